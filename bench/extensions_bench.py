"""Per-call overhead of an isolated (worker process) node vs the same node in process.

The node is the trivial pass-through of ``tests/extensions/bad_nodes/echo.py``;
every path runs in the same event loop in the same run. Goal: isolated p50 <= 200 µs.

The same worker is also measured inside the bubblewrap sandbox (untrusted
nodes): the sandbox is started once per worker, so a call should cost the
same; plain and sandboxed calls alternate in rounds so that a noisy, shared
machine affects both alike. Worker start time is reported too (paid once).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from streams.extensions.errors import SandboxUnavailableError
from streams.extensions.pool import WorkerPool, WorkerSpec
from streams.extensions.proxy import IsolatedNode
from streams.extensions.sandbox import Sandbox
from streams.extensions.worker import load_target
from streams.nodes import Node, NodeContext, TranscriptText

TARGET = "tests.extensions.bad_nodes.echo:build"
GOAL_US = 200.0
ROUNDS = 5
STARTS = 3
SANDBOX = Sandbox(read_only=(str(Path(__file__).resolve().parents[1] / "tests/extensions/bad_nodes"),))


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


def _spec(sandbox: Sandbox | None) -> WorkerSpec:
    return WorkerSpec(name="echo", target=TARGET, timeout_s=2.0, sandbox=sandbox,
                      path=tuple(p for p in sys.path if p))


def _start_ms(sandbox: Sandbox | None) -> float:
    """Median time to spawn a worker and have it answer ``init`` (paid once per worker)."""
    samples = []
    for _ in range(STARTS):
        pool = WorkerPool(_spec(sandbox), size=1)
        start = time.perf_counter()
        pool.prestart()
        samples.append((time.perf_counter() - start) * 1000.0)
        pool.close()
    return statistics.median(samples)


async def _measure(n: int, sandboxed: bool) -> dict[str, list[float]]:
    inproc = load_target(TARGET)({})()
    await _time_calls(inproc, 200)
    out: dict[str, list[float]] = {"local": await _time_calls(inproc, n), "plain": [], "sandbox": []}
    pools = {"plain": WorkerPool(_spec(None), size=1)}
    if sandboxed:
        pools["sandbox"] = WorkerPool(_spec(SANDBOX), size=1)
    try:
        nodes = {name: IsolatedNode(pool, timeout_s=2.0) for name, pool in pools.items()}
        for node in nodes.values():
            await _time_calls(node, 200)  # start the worker, warm both sides
        for _round in range(ROUNDS):
            for name, node in nodes.items():
                out[name] += await _time_calls(node, n // ROUNDS)
    finally:
        for pool in pools.values():
            pool.close()
    return out


def run(*, quick: bool) -> list[dict[str, Any]]:
    n = 2000 if quick else 20000
    try:
        SANDBOX.check()
        sandboxed = True
    except SandboxUnavailableError as exc:
        print(f"bench: extensions: no sandbox figures ({exc})", file=sys.stderr)
        sandboxed = False
    samples = asyncio.run(_measure(n, sandboxed))
    local, remote = samples["local"], samples["plain"]
    local_p50, remote_p50 = statistics.median(local), statistics.median(remote)
    extra = {"calls": n, "in_process_p99_us": round(_pct(local, 0.99), 1),
             "isolated_p99_us": round(_pct(remote, 0.99), 1)}
    rows = [
        {"name": "extensions.isolated_call_p50", "unit": "us/call", "value": round(remote_p50, 1),
         "baseline": "in-process call p50 (same node, same run)",
         "baseline_value": round(local_p50, 1), "goal": f"<= {GOAL_US:.0f} us p50", "extra": extra},
        {"name": "extensions.isolation_overhead_p50", "unit": "us/call",
         "value": round(remote_p50 - local_p50, 1), "baseline": "0 (in process)",
         "baseline_value": 0.0, "goal": f"<= {GOAL_US:.0f} us p50", "extra": extra},
    ]
    if not sandboxed:
        return rows
    boxed = samples["sandbox"]
    boxed_p50 = statistics.median(boxed)
    plain_start, boxed_start = _start_ms(None), _start_ms(SANDBOX)
    extra = {"calls": n, "rounds": ROUNDS, "isolated_p99_us": round(_pct(remote, 0.99), 1),
             "sandboxed_p99_us": round(_pct(boxed, 0.99), 1)}
    return [*rows,
        {"name": "extensions.sandboxed_call_p50", "unit": "us/call", "value": round(boxed_p50, 1),
         "baseline": "isolated call p50 without the sandbox (same run, alternating rounds)",
         "baseline_value": round(remote_p50, 1), "goal": "ratio ~1.0 (sandbox started once per worker)",
         "extra": extra},
        {"name": "extensions.sandbox_overhead_p50", "unit": "us/call",
         "value": round(boxed_p50 - remote_p50, 1), "baseline": "0 (no sandbox)", "baseline_value": 0.0,
         "goal": f"<= {GOAL_US:.0f} us p50 in all (isolated + sandbox)", "extra": extra},
        {"name": "extensions.sandboxed_worker_start", "unit": "ms", "value": round(boxed_start, 1),
         "baseline": "plain worker start (spawn to init answered)",
         "baseline_value": round(plain_start, 1), "goal": "once per worker, not per call",
         "extra": {"starts": STARTS}},
    ]


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
