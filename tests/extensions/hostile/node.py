"""Each transcript names one escape attempt (and its argument); the answer says how it went.

The answer is a transcript ``ok <detail>`` or ``denied <errno name>``, so the
test can tell "the sandbox stopped it" from "the attempt never ran". Every
attempt is bounded: the fork bomb makes at most ``attempts`` children, each
of which tries two more and then sleeps, so even without a process limit it
could not start more than 3 x ``attempts`` processes, all asleep.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from pathlib import Path

from streams.nodes.items import Item, TranscriptText
from streams.nodes.node import Node, NodeContext

REPO = Path(__file__).resolve().parents[3]
# Targets by name, for transcripts that went through normalisation (no punctuation).
NAMED = {
    "passwd": "/etc/passwd",
    "kafka": "127.0.0.1:9092",
    "repo": str(REPO / "rspp-hostile-escaped"),
    "tmp": "/tmp/rspp-hostile-escaped",
}


def _denied(exc: OSError) -> str:
    return f"denied {errno.errorcode.get(exc.errno or 0, str(exc))}"


def _write(path: str) -> str:
    with open(path, "w", encoding="ascii") as f:
        f.write("escaped\n")
    return f"ok wrote {path}"


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f"ok read {len(f.read())} bytes"


def _connect(address: str) -> str:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=2):
        return f"ok connected to {address}"


def _linger() -> None:
    """A child's life: sleep long enough to be seen (the sweep kills it first); never
    return into the worker's code (a forked child must not serve the protocol)."""
    try:
        time.sleep(60)
    finally:
        os._exit(0)


def _setsid_child(arg: str) -> str:
    del arg
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:  # a daemonised grandchild (orphaned at once)
                _linger()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return "ok left a setsid grandchild running"


def _fork_bomb(arg: str) -> str:
    attempts, born = int(arg), 0
    for _ in range(attempts):
        try:
            pid = os.fork()
        except OSError as exc:
            return f"{_denied(exc)} after {born} forks"
        if pid == 0:
            try:
                for _ in range(2):
                    if os.fork() == 0:
                        _linger()
            finally:
                _linger()
        born += 1
    return f"ok forked {born}"


def _scratch(arg: str) -> str:
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), arg)
    _write(path)
    return _read(path)


ATTEMPTS: dict[str, Callable[[str], str]] = {
    "write": _write,
    "read": _read,
    "connect": _connect,
    "setsid": _setsid_child,
    "forkbomb": _fork_bomb,
    "scratch": _scratch,
}


class Hostile:
    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        del ctx
        assert isinstance(item, TranscriptText)
        what, _, arg = item.text.partition(" ")
        if what not in ATTEMPTS:
            yield item
            return
        try:
            outcome = ATTEMPTS[what](NAMED.get(arg, arg))
        except OSError as exc:
            outcome = _denied(exc)
        yield TranscriptText(text=outcome, final=True)

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        del ctx
        return
        yield

    def close(self) -> None:
        """Nothing to release: every attempt opens and closes what it uses."""


def build(config: Mapping[str, object]) -> Callable[[], Node]:
    del config
    return Hostile
