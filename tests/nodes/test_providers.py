"""ProviderChain: timeouts, retries, fallback order, degrade, reported decisions."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.nodes import (
    FallbackDecision,
    NodeContext,
    ProviderChain,
    ProviderError,
    ProviderExhaustedError,
    Report,
)
from streams.nodes.providers import DEGRADE

Outcome = str  # "ok" | "error" | "timeout"


@dataclass
class Scripted:
    """A provider whose n-th call does what its script says."""

    name: str
    script: list[Outcome]
    calls: int = 0
    seen: list[str] = field(default_factory=list)

    async def __call__(self, request: str, ctx: NodeContext) -> str:
        outcome = self.script[self.calls] if self.calls < len(self.script) else "ok"
        self.calls += 1
        self.seen.append(request)
        if outcome == "timeout":
            await asyncio.sleep(60)
        if outcome == "error":
            raise ProviderError(f"{self.name} down")
        return f"{self.name}:{request}"


def _ctx(reports: list[Report]) -> NodeContext:
    return NodeContext(session_id="s", turn_id="t", node_id="tts", correlation_id="c",
                       report=reports.append)


def test_retries_then_falls_back_in_order() -> None:
    a, b = Scripted("a", ["error", "timeout"]), Scripted("b", ["error"])
    chain: ProviderChain[str, str] = ProviderChain(providers=[a, b], timeout_s=0.02, retries=1)
    reports: list[Report] = []
    result = asyncio.run(chain.call("hi", _ctx(reports)))
    assert result == "b:hi"
    assert reports == [
        FallbackDecision("tts", "a", "a", "ProviderError: a down", 1),
        FallbackDecision("tts", "a", "b", "timeout after 0.020s", 2),
        FallbackDecision("tts", "b", "b", "ProviderError: b down", 3),
    ]


def test_exhausted_chain_raises_or_degrades() -> None:
    reports: list[Report] = []
    bad: ProviderChain[str, str] = ProviderChain(
        providers=[Scripted("a", ["error"])], timeout_s=1.0)
    with pytest.raises(ProviderExhaustedError, match="last: ProviderError: a down"):
        asyncio.run(bad.call("x", _ctx(reports)))
    assert reports == [FallbackDecision("tts", "a", None, "ProviderError: a down", 1)]

    reports.clear()
    degraded: ProviderChain[str, str] = ProviderChain(
        providers=[Scripted("a", ["error"])], timeout_s=1.0, degrade=lambda r: f"canned:{r}")
    assert asyncio.run(degraded.call("x", _ctx(reports))) == "canned:x"
    assert reports == [FallbackDecision("tts", "a", DEGRADE, "ProviderError: a down", 1)]


def test_timeout_is_capped_by_the_turn_deadline() -> None:
    reports: list[Report] = []
    ctx = NodeContext(session_id="s", turn_id="t", node_id="tts", correlation_id="c",
                      deadline_ns=time.monotonic_ns() + 30_000_000, report=reports.append)
    chain: ProviderChain[str, str] = ProviderChain(
        providers=[Scripted("a", ["timeout"] * 5)], timeout_s=10.0, retries=4)
    start = time.perf_counter()
    with pytest.raises(ProviderExhaustedError):
        asyncio.run(chain.call("x", ctx))
    assert time.perf_counter() - start < 0.5  # not 5 x 10 s


def test_cancellation_is_not_a_failure() -> None:
    reports: list[Report] = []
    chain: ProviderChain[str, str] = ProviderChain(
        providers=[Scripted("a", ["timeout"]), Scripted("b", [])], timeout_s=30.0)

    async def scenario() -> None:
        task = asyncio.create_task(chain.call("x", _ctx(reports)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert reports == []  # no fallback to "b" for a cancelled call


def _expected(scripts: list[list[Outcome]], retries: int) -> tuple[str | None, list[tuple[str, str | None, str]]]:
    """Reference model: walk the plan, record (from, to, kind) per failed attempt."""
    plan = [(i, n) for i in range(len(scripts)) for n in range(retries + 1)]
    decisions: list[tuple[str, str | None, str]] = []
    for k, (i, n) in enumerate(plan):
        outcome = scripts[i][n] if n < len(scripts[i]) else "ok"
        if outcome == "ok":
            return f"p{i}", decisions
        nxt = f"p{plan[k + 1][0]}" if k + 1 < len(plan) else None
        decisions.append((f"p{i}", nxt, outcome))
    return None, decisions


@settings(max_examples=60, deadline=None)
@given(
    scripts=st.lists(st.lists(st.sampled_from(["ok", "error", "timeout"]), max_size=3),
                     min_size=1, max_size=3),
    retries=st.integers(min_value=0, max_value=2),
)
def test_decisions_follow_the_failure_pattern_deterministically(
    scripts: list[list[Outcome]], retries: int
) -> None:
    def run_once() -> tuple[str | None, list[Report]]:
        providers = [Scripted(f"p{i}", list(s)) for i, s in enumerate(scripts)]
        chain: ProviderChain[str, str] = ProviderChain(
            providers=providers, timeout_s=0.002, retries=retries)
        reports: list[Report] = []
        try:
            result: str | None = asyncio.run(chain.call("req", _ctx(reports))).split(":")[0]
        except ProviderExhaustedError:
            result = None
        return result, reports

    winner, decisions = _expected(scripts, retries)
    first = run_once()
    assert first == run_once()  # same failures -> same result, same decisions
    result, reports = first
    assert result == winner
    got = [(d.from_provider, d.to_provider, "timeout" if d.reason.startswith("timeout") else "error")
           for d in reports if isinstance(d, FallbackDecision)]
    assert got == decisions
    assert [d.attempt for d in reports if isinstance(d, FallbackDecision)] == list(
        range(1, len(decisions) + 1))
