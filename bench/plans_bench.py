"""Freezing a turn's plan at OPEN, per turn, vs building it through the pydantic models.

Every accepted turn freezes its plan on the processor's event loop, so this is
paid once per turn on the hot path:

- ``TurnPlanner.plan``: what the engine calls (runtime state -> frozen plan with
  its canonical JSON and hash);
- baseline: ``TurnPlanResolver.resolve`` with the snapshot models built per turn
  and the plan JSON serialised, the slow path the fast one must equal byte for byte.

Run: ``python -m bench.plans_bench [--quick]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.harness import BenchRow

__all__ = ["run"]


def _best_us(fn: Callable[[int], object], turns: int, rounds: int) -> float:
    # CPU time of this thread: on a shared machine, time spent descheduled is not the plan's.
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        for i in range(turns):
            fn(i)
        best = min(best, (time.thread_time() - started) / turns * 1e6)
    return best


def run(*, quick: bool) -> list[dict[str, Any]]:
    from pipelines.bundles import read_bundle
    from pipelines.canonical import canonical_json
    from pipelines.models.plan import (
        LeaseSnapshot,
        RoutingSnapshot,
        SessionSnapshot,
        TurnOpenRequest,
    )
    from pipelines.plans import TurnPlanResolver
    from pipelines.shipped import PIPELINES_DIR
    from streams.abi import events as ev
    from streams.runtime.planning import TurnPlanner
    from streams.runtime.sessions import SessionState

    bundle = read_bundle(PIPELINES_DIR / "bundles" / "voice_assistant_bundle_v1.json")
    planner = TurnPlanner(bundle=bundle, processor_id="proc-1", prefix="bench.plans")
    session = SessionState(session_id="s-1", tenant_id="acme", partition=3,
                           bundle_id=bundle.ref, next_seq=40, epoch=2)
    trigger = ev.Envelope.new(ev.Transcript(kind=ev.TranscriptKind.FINAL, text="hi"),
                              tenant_id="acme", session_id="s-1", seq=0,
                              ts=datetime(2026, 1, 5, tzinfo=UTC))
    resolver = TurnPlanResolver()
    opened_us = int(trigger.ts.timestamp() * 1_000_000)

    def fast(i: int) -> object:
        return planner.plan(session, trigger, turn_id=f"s-1-t{i}", trigger="final_transcript",
                            epoch=2)

    def slow(i: int) -> object:
        plan = resolver.resolve(
            bundle=bundle,
            session=SessionSnapshot(tenant_id="acme", session_id="s-1",
                                    pinned_bundle_digest=bundle.digest, next_seq=40, last_epoch=2),
            turn=TurnOpenRequest(turn_id=f"s-1-t{i}", trigger="final_transcript",
                                 correlation_id=trigger.correlation.correlation_id,
                                 opened_at_us=opened_us),
            lease=LeaseSnapshot(epoch=2, holder="proc-1", partition=3),
            routing=RoutingSnapshot(topic_prefix="bench.plans", partition=3,
                                    processor_id="proc-1"),
        )
        return canonical_json(plan.model_dump(mode="json"))

    turns, rounds = (2000, 3) if quick else (20000, 5)
    fast(0), slow(0)  # warm the graph cache: it is built once per bundle, not per turn
    fast_us = _best_us(fast, turns, rounds)
    slow_us = _best_us(slow, max(200, turns // 10), rounds)
    rows = [
        BenchRow(name="plan freeze per turn (TurnPlanner.plan)", unit="us", value=fast_us,
                 baseline="resolve() through the snapshot and plan models", baseline_value=slow_us,
                 goal="<= 0.15x"),
    ]
    return [r.as_dict() for r in rows]


if __name__ == "__main__":
    from bench.__main__ import main

    main(["--only", "plans"])
