"""The isolated worker process: ``python -m streams.extensions.worker``.

It reads frames from stdin and answers on stdout (see :mod:`frames`). The
first frame is ``init``: extra ``sys.path`` entries, the plugin target
(``module:attr``), the node config and the resource limits. The worker then
imports the plugin, applies ``setrlimit`` (address space = its size after
imports + ``memory_mb``; open files; CPU seconds re-armed before every call)
and serves ``process`` / ``flush`` / ``close`` requests one at a time.

Under a :class:`~streams.extensions.sandbox.Sandbox` the worker was started
by :mod:`streams.extensions.confine` (own user namespace, process limit,
reaper of all it starts) and ``init["sandbox"]`` is set: after each call, any
process the call left behind is killed and reaped before the answer.

``sys.stdout`` is pointed at stderr, so a stray ``print`` in a node cannot
corrupt the protocol; bytes written to fd 1 directly still can, and the parent
treats them as a protocol violation. SIGINT interrupts the running call (the
parent's cooperative cancel); a ``MemoryError`` is answered and then the
worker exits, since its heap may be unusable.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import os
import resource
import signal
import sys
from collections.abc import AsyncGenerator, Callable
from typing import Any, BinaryIO

from streams.extensions.frames import HEADER, decode_item, encode_frame, encode_item
from streams.nodes.items import Item
from streams.nodes.node import Node, NodeContext

__all__ = ["load_target", "main"]

_EXIT_MEMORY = 3
_SIGINT = {signal.SIGINT}


def load_target(target: str) -> Callable[[dict[str, object]], Callable[[], Node]]:
    """Import ``module:attr`` (an entry point value or a plain module's builder)."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj  # type: ignore[no-any-return]


def _vm_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _apply_limits(limits: dict[str, int]) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort must not stall on a core dump
    nofile = limits.get("nofile", 64)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    memory = _vm_bytes() + limits["memory_mb"] * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def _sweep() -> None:
    """Kill and reap every process the last call left running (sandbox only).

    The worker is pid 2 of its PID namespace and the reaper of all its
    descendants, so "no child" means no other process but bwrap's init, and
    ``kill(-1)`` reaches only this namespace (never the worker or pid 1).
    One ``waitpid`` answers the common case: no children at all.
    """
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:  # alive children remain
            os.kill(-1, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-1, 0)


def _arm_cpu(cpu_ms: int) -> None:
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(used.ru_utime + used.ru_stime + cpu_ms / 1000.0)
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    """``n`` bytes, or None at end of input (an unbuffered pipe read may return fewer)."""
    chunks: list[bytes] = []
    while n > 0:
        data = stream.read(n)
        if not data:
            return None
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _collect(gen: AsyncGenerator[Item, None]) -> list[dict[str, Any]]:
    try:
        return [encode_item(item) async for item in gen]
    finally:
        await gen.aclose()


def _context(raw: dict[str, Any]) -> NodeContext:
    return NodeContext(
        session_id=str(raw.get("session_id", "")),
        turn_id=str(raw.get("turn_id", "")),
        node_id=str(raw.get("node_id", "")),
        correlation_id=str(raw.get("correlation_id", "")),
        deadline_ns=raw.get("deadline_ns"),
    )


class _Server:
    def __init__(self, factory: Callable[[], Node], cpu_ms: int, out: int, *, sandboxed: bool) -> None:
        self.factory = factory
        self.sandboxed = sandboxed
        self.cpu_ms = cpu_ms
        self.out = out
        self.nodes: dict[int, Node] = {}
        self.loop = asyncio.new_event_loop()

    def reply(self, message: dict[str, Any]) -> None:
        frame = encode_frame(message)
        # A cancel's SIGINT must not cut a frame in half (nor the sweep).
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)
        try:
            if self.sandboxed:
                _sweep()  # before the answer: nothing a call started outlives it
            _write_all(self.out, frame)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGINT)

    def handle(self, request: dict[str, Any]) -> bool:
        """Serve one request; False when the worker must exit."""
        op, inst = request.get("op"), int(request.get("inst", 0))
        if op == "close":
            node = self.nodes.pop(inst, None)
            if node is not None:
                node.close()
            if self.sandboxed:
                _sweep()
            return True
        call_id = request.get("id")
        try:
            node = self.nodes.get(inst)
            if node is None:
                node = self.nodes[inst] = self.factory()
            ctx = _context(request.get("ctx") or {})
            _arm_cpu(self.cpu_ms)
            if op == "process":
                gen = node.process(decode_item(request["item"]), ctx)
            elif op == "flush":
                gen = node.flush(ctx)
            else:
                raise ValueError(f"unknown op {op!r}")
            out = self.loop.run_until_complete(_collect(gen))
            if not request.get("keep", True):  # stateless: one instance per call
                self.nodes.pop(inst).close()
        except KeyboardInterrupt:
            self.reply({"id": call_id, "ok": False, "error": "cancelled", "message": "interrupted"})
            return True
        except MemoryError:
            self.nodes.clear()
            self.reply({"id": call_id, "ok": False, "error": "memory", "message": "MemoryError"})
            return False
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"[:500]
            self.reply({"id": call_id, "ok": False, "error": "raised", "message": message})
            return True
        self.reply({"id": call_id, "ok": True, "out": out})
        return True


def _serve(inp: BinaryIO, out: int) -> int:
    import orjson

    header = _read_exact(inp, HEADER.size)
    if header is None:
        return 0
    body = _read_exact(inp, HEADER.unpack(header)[0])
    if body is None:
        return 0
    init = orjson.loads(body)
    for path in reversed(init.get("path", [])):
        if path not in sys.path:
            sys.path.insert(0, path)
    sandbox = init.get("sandbox")
    try:
        build = load_target(init["target"])
        factory = build(dict(init.get("config") or {}))
        _apply_limits(init["limits"])
    except Exception as exc:
        _write_all(out, encode_frame({"id": 0, "ok": False, "error": "load",
                                      "message": f"{type(exc).__name__}: {exc}"[:500]}))
        return 1
    server = _Server(factory, int(init["limits"].get("cpu_ms", 1000)), out,
                     sandboxed=sandbox is not None)
    server.reply({"id": 0, "ok": True, "pid": os.getpid()})
    while True:
        try:
            header = _read_exact(inp, HEADER.size)
            if header is None:
                return 0
            body = _read_exact(inp, HEADER.unpack(header)[0])
            if body is None:
                return 0
            if not server.handle(orjson.loads(body)):
                return _EXIT_MEMORY
        except KeyboardInterrupt:
            continue  # a cancel that arrived between calls: nothing to interrupt


def main() -> int:
    out = os.dup(1)
    sys.stdout = sys.stderr  # stray prints must not reach the protocol pipe
    with os.fdopen(0, "rb", buffering=0) as inp:
        return _serve(inp, out)


if __name__ == "__main__":
    raise SystemExit(main())
