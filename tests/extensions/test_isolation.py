"""Isolated nodes: each misbehaviour becomes a typed node error within budget + margin,
the worker is replaced, and the next call (another turn) is served; the same holds
for a worker in the bubblewrap sandbox (untrusted nodes)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from streams.extensions import (
    IsolatedNode,
    IsolatedNodeError,
    Sandbox,
    WorkerCrashedError,
    WorkerMemoryError,
    WorkerPool,
    WorkerProtocolError,
    WorkerSpec,
    WorkerTimeoutError,
)
from streams.nodes import NodeContext, NodeError, NodeTimeoutError, TranscriptText
from tests.extensions.conftest import BUDGET_MS, MARGIN_S

CTX = NodeContext(session_id="s1", turn_id="t1", node_id="bad", correlation_id="c1")


SANDBOX = Sandbox(read_only=(str(Path(__file__).parent / "bad_nodes"),))


def _pool(module: str, *, cancel: str = "kill", sandboxed: bool = False) -> WorkerPool:
    spec = WorkerSpec(name=f"ext.bad_{module}", target=f"tests.extensions.bad_nodes.{module}:build",
                      timeout_s=BUDGET_MS / 1000, memory_mb=64, cpu_ms=1000,
                      cancel=cancel,  # type: ignore[arg-type]
                      path=tuple(p for p in sys.path if p), sandbox=SANDBOX if sandboxed else None)
    pool = WorkerPool(spec, size=1)
    pool.prestart()
    return pool


async def _call(pool: WorkerPool, text: str) -> list[object]:
    node = IsolatedNode(pool, timeout_s=BUDGET_MS / 1000)
    try:
        return [out async for out in node.process(TranscriptText(text=text, final=True), CTX)]
    finally:
        node.close()


@pytest.mark.parametrize("sandboxed", [False, True], ids=["plain", "sandbox"])
@pytest.mark.parametrize(
    ("module", "error", "says"),
    [
        ("abort", WorkerCrashedError, "died of SIGABRT"),
        ("spin", WorkerTimeoutError, r"overran its budget \(450 ms deadline, timeout\)"),
        ("hog", WorkerMemoryError, "64 MB memory limit"),
        ("garbage", WorkerProtocolError, "garbage to the pipe"),
    ],
)
def test_misbehaviour_is_a_node_error_within_budget(
    module: str, error: type[IsolatedNodeError], says: str, sandboxed: bool
) -> None:
    async def scenario() -> None:
        pool = _pool(module, sandboxed=sandboxed)
        try:
            assert await _call(pool, "hello there") == [TranscriptText("hello there", True)]
            pid = pool.workers[0].pid
            start = time.monotonic()
            with pytest.raises(error, match=says) as caught:
                await _call(pool, f"please {module} now")
            assert time.monotonic() - start < BUDGET_MS / 1000 + MARGIN_S
            assert isinstance(caught.value, NodeError)  # the runtime writes NODE_ERROR
            assert pool.restarts == 1 and pool.workers[0].pid != pid
            # The replacement serves the next turn.
            assert await _call(pool, "and again") == [TranscriptText("and again", True)]
        finally:
            pool.close()

    asyncio.run(scenario())


def test_timeout_is_classified_as_a_timeout() -> None:
    assert issubclass(WorkerTimeoutError, NodeTimeoutError)


@pytest.mark.parametrize("sandboxed", [False, True], ids=["plain", "sandbox"])
def test_cancel_kills_the_running_call(sandboxed: bool) -> None:
    async def scenario() -> None:
        pool = _pool("spin", sandboxed=sandboxed)
        try:
            await _call(pool, "warm up")
            pid = pool.workers[0].pid
            task = asyncio.create_task(_call(pool, "spin forever"))
            await asyncio.sleep(0.05)
            start = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - start < 0.05
            assert pool.workers[0].pid != pid  # killed, replaced
            assert await _call(pool, "next turn") == [TranscriptText("next turn", True)]
        finally:
            pool.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("sandboxed", [False, True], ids=["plain", "sandbox"])
def test_cooperative_cancel_interrupts_without_a_restart(sandboxed: bool) -> None:
    # Under bubblewrap the SIGINT goes to the worker itself (bwrap does not forward it).
    async def scenario() -> None:
        pool = _pool("spin", cancel="cooperative", sandboxed=sandboxed)
        try:
            await _call(pool, "warm up")
            pid = pool.workers[0].pid
            task = asyncio.create_task(_call(pool, "spin forever"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await _call(pool, "next turn") == [TranscriptText("next turn", True)]
            assert pool.workers[0].pid == pid and pool.restarts == 0  # SIGINT sufficed
        finally:
            pool.close()

    asyncio.run(scenario())


def test_other_sessions_are_served_while_one_worker_hangs() -> None:
    async def scenario() -> None:
        spec = WorkerSpec(name="ext.bad_spin", target="tests.extensions.bad_nodes.spin:build",
                          timeout_s=BUDGET_MS / 1000, path=tuple(p for p in sys.path if p))
        pool = WorkerPool(spec, size=2)
        pool.prestart()
        try:
            hung = IsolatedNode(pool, timeout_s=BUDGET_MS / 1000)
            other = IsolatedNode(pool, timeout_s=BUDGET_MS / 1000)
            hang = asyncio.create_task(
                _drain(hung.process(TranscriptText("spin", True), CTX)))
            await asyncio.sleep(0.02)
            start = time.monotonic()
            out = await _drain(other.process(TranscriptText("fine", True), CTX))
            assert out == [TranscriptText("fine", True)]
            assert time.monotonic() - start < BUDGET_MS / 1000  # not behind the hung call
            with pytest.raises(WorkerTimeoutError):
                await hang
        finally:
            pool.close()

    asyncio.run(scenario())


async def _drain(gen: object) -> list[object]:
    return [x async for x in gen]  # type: ignore[attr-defined]
