"""The ``rspp run`` supervisor: restart after transient failures, stop cleanly when asked.

Pure control logic, so the processor is a scripted stand-in: each incarnation either
fails the way a real one does after a broker outage (``ProcessorError`` from a stalled
call, ``FencedError`` with lost membership) or runs until the stop event. The stop
request is a real SIGTERM delivered to this process.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from streams.runtime.errors import FencedError, ProcessorError
from streams.runtime.stats import EngineStats
from streams.runtime.supervisor import supervise


class ScriptedProcessor:
    """One incarnation: ``fail`` is raised from ``run`` (None: run until stopped)."""

    def __init__(self, fail: Exception | None, *, taken_over: bool = False) -> None:
        self.fail = fail
        self._taken_over = taken_over
        self.stats = EngineStats(events_in=7, fence_latency_ms=[1.5])
        self.dlq_count = 2
        self.dlq_reasons = {"bad frame": 2}
        self.egress = SimpleNamespace(stats=SimpleNamespace(transactions=3, records=30))
        self.ran = False

    async def run(self, stop: asyncio.Event) -> EngineStats:
        self.ran = True
        if self.fail is not None:
            raise self.fail
        await stop.wait()
        return self.stats

    def taken_over(self) -> bool:
        return self._taken_over


def _factory(script: list[ScriptedProcessor]) -> Callable[[Any], Any]:
    made = iter(script)
    return lambda _config: next(made)


def _sigterm_after(seconds: float) -> None:
    asyncio.get_running_loop().call_later(seconds, os.kill, os.getpid(), signal.SIGTERM)


async def _run(script: list[ScriptedProcessor], *, sigterm_after: float) -> tuple[Any, Any]:
    _sigterm_after(sigterm_after)
    return await supervise(object(), factory=_factory(script))  # type: ignore[arg-type]


def test_restarts_after_a_transient_failure_then_stops_cleanly() -> None:
    first = ScriptedProcessor(ProcessorError("produce stalled"))
    second = ScriptedProcessor(None)
    processor, totals = asyncio.run(_run([first, second], sigterm_after=1.5))
    assert first.ran and second.ran
    assert processor is second
    # The summary covers both incarnations, not only the last.
    assert totals.restarts == 1
    assert totals.stats.events_in == 14 and totals.stats.fence_latency_ms == [1.5, 1.5]
    assert (totals.dlq, totals.dlq_reasons) == (4, {"bad frame": 4})
    assert (totals.transactions, totals.records) == (6, 60)


def test_stop_during_the_restart_back_off_is_an_orderly_stop() -> None:
    """The CI flake of session 4: SIGTERM while waiting to restart exited 1."""
    lost = FencedError("UNKNOWN_MEMBER_ID", membership_lost=True)
    first = ScriptedProcessor(lost)
    never = ScriptedProcessor(None)
    processor, totals = asyncio.run(_run([first, never], sigterm_after=0.3))
    assert processor is first
    assert totals.restarts == 0 and totals.stats.events_in == 7
    assert not never.ran, "a new incarnation was started after the stop request"


def test_lost_membership_with_a_new_holder_is_a_zombie_and_stops_for_good() -> None:
    lost = FencedError("UNKNOWN_MEMBER_ID", membership_lost=True)
    with pytest.raises(FencedError):
        asyncio.run(_run([ScriptedProcessor(lost, taken_over=True)], sigterm_after=5.0))


def test_a_stalled_call_after_a_takeover_is_reported_as_fenced() -> None:
    stalled = ProcessorError("transaction commit timed out")
    with pytest.raises(FencedError, match="another holder took"):
        asyncio.run(_run([ScriptedProcessor(stalled, taken_over=True)], sigterm_after=5.0))
