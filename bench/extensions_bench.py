"""Per-call overhead of an isolated (worker process) node vs the same node in process.

The node is the trivial pass-through of ``tests/extensions/bad_nodes/echo.py``;
both paths run in the same event loop in the same run. Goal: isolated p50 <= 200 µs.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

from streams.extensions.pool import WorkerPool, WorkerSpec
from streams.extensions.proxy import IsolatedNode
from streams.extensions.worker import load_target
from streams.nodes import Node, NodeContext, TranscriptText

TARGET = "tests.extensions.bad_nodes.echo:build"
GOAL_US = 200.0


async def _time_calls(node: Node, n: int) -> list[float]:
    ctx = NodeContext(session_id="bench", turn_id="t", node_id="echo", correlation_id="c")
    item = TranscriptText(text="what time is it", final=True)
    samples: list[float] = []
    for _ in range(n):
        start = time.perf_counter_ns()
        async for _out in node.process(item, ctx):
            pass
        samples.append((time.perf_counter_ns() - start) / 1000.0)
    return samples


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(n: int) -> tuple[list[float], list[float]]:
    inproc = load_target(TARGET)({})()
    await _time_calls(inproc, 200)
    local = await _time_calls(inproc, n)
    pool = WorkerPool(WorkerSpec(name="echo", target=TARGET, timeout_s=2.0,
                                 path=tuple(p for p in sys.path if p)), size=1)
    try:
        isolated = IsolatedNode(pool, timeout_s=2.0)
        await _time_calls(isolated, 200)  # start the worker, warm both sides
        remote = await _time_calls(isolated, n)
    finally:
        pool.close()
    return local, remote


def run(*, quick: bool) -> list[dict[str, Any]]:
    n = 2000 if quick else 20000
    local, remote = asyncio.run(_measure(n))
    local_p50, remote_p50 = statistics.median(local), statistics.median(remote)
    extra = {"calls": n, "in_process_p99_us": round(_pct(local, 0.99), 1),
             "isolated_p99_us": round(_pct(remote, 0.99), 1)}
    return [
        {"name": "extensions.isolated_call_p50", "unit": "us/call", "value": round(remote_p50, 1),
         "baseline": "in-process call p50 (same node, same run)",
         "baseline_value": round(local_p50, 1), "goal": f"<= {GOAL_US:.0f} us p50", "extra": extra},
        {"name": "extensions.isolation_overhead_p50", "unit": "us/call",
         "value": round(remote_p50 - local_p50, 1), "baseline": "0 (in process)",
         "baseline_value": 0.0, "goal": f"<= {GOAL_US:.0f} us p50", "extra": extra},
    ]


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
