"""One worker process for an isolated node: spawn, call with a deadline, cancel, replace.

A :class:`WorkerPool` holds a few :class:`Worker` processes for one extension.
Each worker serves one call at a time (an asyncio lock); a node instance is
bound to one worker for its turn, so per-turn state stays in one process.
Every failure mode ends the same way: the pending call raises an
:class:`~streams.extensions.errors.IsolatedNodeError`, the worker's process
group is killed if it is still alive, and a fresh worker is spawned at once so
the next call (another session's turn) does not pay for the crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from streams.extensions.errors import (
    ExtensionRefusedError,
    IsolatedNodeError,
    NodeRaisedError,
    WorkerCrashedError,
    WorkerMemoryError,
    WorkerProtocolError,
    WorkerTimeoutError,
)
from streams.extensions.frames import FrameDecoder, FrameError, encode_frame, read_frames_blocking
from streams.extensions.sandbox import inner_pid
from streams.extensions.spec import WorkerSpec

__all__ = ["Worker"]

_STDERR_TAIL = 2048
_CANCEL_GRACE_S = 0.1
_START_ATTEMPTS = 3  # a worker that dies this often before answering init is not respawned


def _nothing() -> None:
    pass


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exited (status unknown)"
    if code < 0:
        sig = signal.Signals(-code)
        hint = " (CPU limit)" if sig is signal.SIGXCPU else ""
        return f"died of {sig.name}{hint}"
    return f"exited with status {code}"


class Worker:
    """One worker process slot; replaced in place after every failure."""

    def __init__(self, spec: WorkerSpec, slot: int) -> None:
        self.spec = spec
        self.slot = slot
        self.bound = 0  # node instances bound to this slot (load balancing)
        self.generation = 0
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._ready: asyncio.Future[None] | None = None
        self._draining: asyncio.Task[None] | None = None
        self._started = False
        self.reserved = False
        self.on_free: Callable[[], None] = _nothing
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._decoder = FrameDecoder()
        self._stderr = bytearray()
        self._last_id = 0
        self._load_error: ExtensionRefusedError | None = None
        self._zombies: list[subprocess.Popen[bytes]] = []
        self._signal_pid: int | None = None  # the worker under bubblewrap (found on demand)
        self._start_failures = 0

    # -- process lifecycle ---------------------------------------------------

    @property
    def busy(self) -> bool:
        """Starting, running or queueing a call, or draining a cancel."""
        if self._load_error is not None:
            return False  # let the call report the load error at once
        return (not self._started or self.reserved or self._draining is not None
                or (self._lock is not None and self._lock.locked()))

    def wait_started(self) -> None:
        """Block until the worker answered ``init`` (graph build time, before any turn).

        Without a loop attached the answer is read here; a failure is left for
        the first call to report (as a node error), so a graph still builds.
        """
        proc = self._proc
        if self._started or proc is None or proc.stdout is None or self._loop is not None:
            return
        messages = read_frames_blocking(proc.stdout.fileno(), self._decoder, self.spec.start_timeout_s)
        if messages and messages[0].get("id") == 0:
            if messages[0].get("ok") is True:
                self._started = True
                self._start_failures = 0
            else:
                self._load_error = ExtensionRefusedError(
                    f"{self.spec.name}: worker could not load {self.spec.target}: "
                    f"{messages[0].get('message')}")

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def spawn(self) -> None:
        """Start the process and send ``init`` (no event loop needed)."""
        self._zombies = [z for z in self._zombies if z.poll() is None]
        sandbox = self.spec.sandbox
        argv = ([sys.executable, "-m", "streams.extensions.worker"] if sandbox is None
                else sandbox.worker_argv())
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a kill takes its children too
        )
        assert proc.stdin is not None
        # A worker that died at once (a sandbox that cannot start) is seen at its stdout's end.
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(encode_frame(self.spec.init_message()))
            proc.stdin.flush()
        self._proc = proc
        self._decoder = FrameDecoder()
        self._stderr = bytearray()
        self._ready = None
        self._started = False
        self._signal_pid = None
        self.generation += 1
        if self._loop is not None and not self._loop.is_closed():
            self._watch(self._loop)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        self._ready = loop.create_future()
        if self._started:  # the init answer was already read by wait_started()
            self._ready.set_result(None)
        loop.add_reader(proc.stdout.fileno(), self._on_stdout, proc)
        loop.add_reader(proc.stderr.fileno(), self._on_stderr, proc)

    def _unwatch(self, proc: subprocess.Popen[bytes]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for stream in (proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                loop.remove_reader(stream.fileno())

    def attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._proc is not None and self._loop is not None:
                self.kill()  # its readers belong to another (maybe closed) loop
            self._loop = loop
            self._lock = asyncio.Lock()
            self._draining = None
            if self._proc is None:
                self.spawn()
            else:
                self._watch(loop)
        elif self._proc is None:
            self.spawn()
        return loop

    def kill(self) -> None:
        """Kill the process group now and forget the process (pending calls fail)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._unwatch(proc)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if proc.poll() is None:
            self._zombies.append(proc)  # reaped on the next spawn

    def _replace(self, error: IsolatedNodeError) -> None:
        """Fail every pending call with ``error``, kill, and start a fresh worker."""
        pending, self._pending = self._pending, {}
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()  # retrieved: nobody may be waiting yet
        self.kill()
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(error)
        if self._load_error is None:  # a plugin that cannot load is not respawned in a loop
            self.restarts += 1
            self.spawn()
        self.on_free()  # a pool waiting for this slot looks again (it may now report the refusal)

    def respawn(self) -> None:
        self.kill()
        self.restarts += 1
        self.spawn()

    def _stderr_line(self) -> str:
        lines = bytes(self._stderr).decode(errors="replace").strip().splitlines()
        return f" (stderr: {lines[-1][:200]})" if lines else ""

    # -- reader callbacks ----------------------------------------------------

    def _on_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        try:
            data = os.read(proc.stderr.fileno(), 65536)
        except OSError:
            data = b""
        if not data:
            if self._loop is not None:
                self._loop.remove_reader(proc.stderr.fileno())
            return
        if proc is self._proc:
            self._stderr += data
            del self._stderr[:-_STDERR_TAIL]

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        """What a dead worker still had on stderr (its last words name the failure)."""
        if proc.stderr is None or proc.stderr.closed:
            return
        os.set_blocking(proc.stderr.fileno(), False)
        with contextlib.suppress(OSError):
            while data := os.read(proc.stderr.fileno(), 65536):
                self._stderr += data
        del self._stderr[:-_STDERR_TAIL]

    def _on_stdout(self, proc: subprocess.Popen[bytes]) -> None:
        if proc is not self._proc:
            return
        assert proc.stdout is not None
        try:
            data = os.read(proc.stdout.fileno(), 1 << 20)
        except OSError:
            data = b""
        if not data:
            self._on_exit(proc)
            return
        try:
            messages = self._decoder.feed(data)
        except FrameError as exc:
            self._replace(WorkerProtocolError(
                f"{self.spec.name}: worker pid {proc.pid} wrote garbage to the pipe ({exc}); "
                "worker replaced"))
            return
        for message in messages:
            self._on_message(proc, message)

    def _on_message(self, proc: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
        call_id = message.get("id")
        if call_id == 0 and self._ready is not None and not self._ready.done():
            if message.get("ok") is True:
                self._started = True
                self._start_failures = 0
                self._ready.set_result(None)
                self.on_free()
            else:
                self._load_error = ExtensionRefusedError(
                    f"{self.spec.name}: worker could not load {self.spec.target}: "
                    f"{message.get('message')}")
                self._ready.set_exception(self._load_error)
                self._ready.exception()
            return
        fut = self._pending.get(call_id) if isinstance(call_id, int) else None
        if fut is None:
            # Ids already issued may be late answers to calls that were cancelled.
            if not isinstance(call_id, int) or not 0 < call_id <= self._last_id:
                self._replace(WorkerProtocolError(
                    f"{self.spec.name}: worker pid {proc.pid} sent an unexpected frame "
                    f"{str(message)[:80]}; worker replaced"))
            return  # a late answer to a call that was cancelled
        if not fut.done():
            fut.set_result(message)

    def _on_exit(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            code: int | None = proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            code = None
        if self.spec.sandbox is not None and code is not None and code > 128:
            code = 128 - code  # bubblewrap exits 128 + the signal that killed the worker
        self._drain_stderr(proc)
        if not self._started:
            self._start_failures += 1
            if self._start_failures >= _START_ATTEMPTS:  # not respawned in a loop
                self._load_error = ExtensionRefusedError(
                    f"{self.spec.name}: worker {_describe_exit(code)} before it started, "
                    f"{_START_ATTEMPTS} times{self._stderr_line()}")
        error: IsolatedNodeError
        if code == 3:
            error = WorkerMemoryError(
                f"{self.spec.name}: worker pid {proc.pid} exceeded its {self.spec.memory_mb} MB "
                "memory limit; worker replaced")
        else:
            error = WorkerCrashedError(
                f"{self.spec.name}: worker pid {proc.pid} {_describe_exit(code)}"
                f"{self._stderr_line()}; worker replaced")
        self._replace(error)

    # -- calls ---------------------------------------------------------------

    async def _ensure_ready(self) -> None:
        for _attempt in range(3):
            if self._load_error is not None:
                raise self._load_error
            if self._draining is not None:
                await asyncio.shield(self._draining)
            self.attach()
            ready = self._ready
            assert ready is not None
            if ready.done() and ready.exception() is None:
                return
            try:
                async with asyncio.timeout(self.spec.start_timeout_s):
                    await asyncio.shield(ready)
                return
            except IsolatedNodeError:
                continue  # it died while starting; a fresh one is already spawning
            except TimeoutError:
                self.kill()
                raise WorkerCrashedError(
                    f"{self.spec.name}: worker did not start within {self.spec.start_timeout_s} s"
                    f"{self._stderr_line()}") from None
        raise WorkerCrashedError(f"{self.spec.name}: worker died while starting, 3 times"
                                 f"{self._stderr_line()}")

    async def call(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and wait for its answer; raises an IsolatedNodeError on failure."""
        self.attach()
        self.reserved = False  # the lock below is taken without yielding
        assert self._lock is not None
        async with self._lock:
            await self._ensure_ready()
            loop = asyncio.get_running_loop()
            self._last_id += 1
            call_id = self._last_id
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._pending[call_id] = fut
            proc = self._proc
            assert proc is not None and proc.stdin is not None
            try:
                os.write(proc.stdin.fileno(), encode_frame({**message, "id": call_id}))
                async with asyncio.timeout(timeout_s):
                    reply = await fut
            except TimeoutError:
                self._pending.pop(call_id, None)
                timeout = WorkerTimeoutError(
                    f"{self.spec.name}: call overran its budget ({timeout_s * 1000:.0f} ms deadline, "
                    f"timeout); worker pid {proc.pid} killed and replaced")
                self._replace(timeout)
                raise timeout from None
            except asyncio.CancelledError:
                self._cancel(call_id, fut, proc)
                raise
            except OSError as exc:  # the pipe broke under us: the worker is gone
                self._pending.pop(call_id, None)
                broken = WorkerCrashedError(
                    f"{self.spec.name}: worker pid {proc.pid} pipe broke ({exc}); worker replaced")
                self._replace(broken)
                raise broken from None
            finally:
                self.on_free()
            self._pending.pop(call_id, None)
        if reply.get("ok") is True:
            return reply
        kind, text = reply.get("error"), str(reply.get("message", ""))[:500]
        if kind == "raised":
            raise NodeRaisedError(f"{self.spec.name}: node raised {text}")
        if kind == "memory":  # the worker exits after answering; replace it now
            self.respawn()
            raise WorkerMemoryError(f"{self.spec.name}: node exceeded its "
                                    f"{self.spec.memory_mb} MB memory limit; worker replaced")
        raise WorkerProtocolError(f"{self.spec.name}: unexpected reply {str(reply)[:80]}")

    def _cancel(self, call_id: int, fut: asyncio.Future[dict[str, Any]],
                proc: subprocess.Popen[bytes]) -> None:
        """The caller was cancelled mid-call: interrupt (cooperative) or kill the worker."""
        if self.spec.cancel == "kill" or proc is not self._proc:
            self._pending.pop(call_id, None)
            self.respawn()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._interrupt_pid(proc), signal.SIGINT)
        self._draining = asyncio.get_running_loop().create_task(self._drain(call_id, fut, proc))

    def _interrupt_pid(self, proc: subprocess.Popen[bytes]) -> int:
        """The pid a cooperative cancel signals: the worker itself, also under bubblewrap
        (which does not forward signals to the sandbox)."""
        if self.spec.sandbox is None:
            return proc.pid
        if self._signal_pid is None:
            self._signal_pid = inner_pid(proc.pid)
        return proc.pid if self._signal_pid is None else self._signal_pid

    async def _drain(self, call_id: int, fut: asyncio.Future[dict[str, Any]],
                     proc: subprocess.Popen[bytes]) -> None:
        try:
            async with asyncio.timeout(_CANCEL_GRACE_S):
                await fut
        except (TimeoutError, IsolatedNodeError):
            if proc is self._proc:
                self.respawn()
        finally:
            self._pending.pop(call_id, None)
            self._draining = None
            self.on_free()

    def send_close(self, inst: int, generation: int) -> None:
        """Fire-and-forget: drop a node instance (ignored if the worker was replaced)."""
        proc = self._proc
        if proc is None or proc.stdin is None or generation != self.generation:
            return
        with contextlib.suppress(OSError):
            os.write(proc.stdin.fileno(), encode_frame({"op": "close", "inst": inst}))
