"""Observability overhead (issue 21): runtime throughput with metrics and tracing on vs off.

The transcript-only processor of ``bench/runtime_bench.py`` (exactly-once log, plans,
snapshots) runs the same records four ways: nothing observed; Prometheus metrics (own
registry, ``/metrics`` served on a loopback port); OpenTelemetry tracing at 100 % sampling
(spans exported from a thread in batches; the exporter drops them, so no receiver's speed
is measured);
both. Each configuration runs ``rounds`` times in rotated order and keeps its best rate:
the machine is shared and the noise is one-sided. Goals: metrics overhead <= 5 %, tracing
at 100 % <= 15 %.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.harness import BenchRow, scratch_prefix
from bench.runtime_bench import PARTITIONS, _fill, _rspp_rate, transcript_only_bundle

__all__ = ["run"]

CONFIGS = ("off", "metrics", "tracing", "both")


class _Dropped:
    """A span exporter that counts and drops (the SDK's work is measured, not a receiver's)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _observer(kind: str) -> tuple[Any, Callable[[], dict[str, Any]]]:
    from streams.observability import (
        NO_OBSERVER,
        Fanout,
        MetricsServer,
        ProcessorMetrics,
        SessionTracer,
    )

    if kind == "off":
        return NO_OBSERVER, dict
    observers: list[Any] = []
    closers: list[Callable[[], None]] = []
    exporter = _Dropped()
    if kind in ("metrics", "both"):
        metrics = ProcessorMetrics()
        server = MetricsServer(metrics.registry, port=0, host="127.0.0.1")
        observers.append(metrics)
        closers.append(server.close)
    if kind in ("tracing", "both"):
        tracer = SessionTracer(exporter)  # type: ignore[arg-type]
        observers.append(tracer)
        closers.append(tracer.shutdown)

    def close() -> dict[str, Any]:
        for c in closers:
            c()
        return {"spans": exporter.spans}

    return Fanout(observers), close


def run(*, quick: bool, bootstrap: str) -> list[dict[str, Any]]:
    from streams.topics import TopicLayout, apply_topics

    sessions, per_session = (200, 10) if quick else (500, 20)
    rounds = 2 if quick else 3
    bundle = transcript_only_bundle(Path(tempfile.mkdtemp(prefix="rspp-obs-bench-")))
    layouts = {(k, r): TopicLayout(prefix=scratch_prefix(f"obs-{k}"), partitions=PARTITIONS)
               for k in CONFIGS for r in range(rounds)}
    for layout in layouts.values():
        apply_topics(bootstrap, layout)
    total = _fill(bootstrap, [lay.data for lay in layouts.values()], sessions=sessions,
                  per_session=per_session)
    best: dict[str, dict[str, Any]] = {}
    for r in range(rounds):
        for i in range(len(CONFIGS)):
            kind = CONFIGS[(i + r) % len(CONFIGS)]
            observer, close = _observer(kind)
            try:
                result = _rspp_rate(bootstrap, layouts[(kind, r)].prefix, bundle, total,
                                    transactional=True, observer=observer)
            finally:
                result_extra = close()
            result.update(result_extra)
            if kind not in best or result["rate"] > best[kind]["rate"]:
                best[kind] = result
    off = best["off"]["rate"]
    shape = f"{sessions} sessions x {per_session} final transcripts, best of {rounds}"

    def row(kind: str, label: str, goal: str, limit: float) -> BenchRow:
        ratio = best[kind]["rate"] / off
        return BenchRow(name=f"runtime with {label} ({shape})", unit="ev/s",
                        value=best[kind]["rate"], baseline="same, observability off",
                        baseline_value=off, goal=goal,
                        extra={"overhead": round(1.0 - ratio, 4), "met": ratio >= 1.0 - limit,
                               **best[kind]})

    rows = [
        row("metrics", "Prometheus metrics on", "overhead <= 5% (ratio >= 0.95)", 0.05),
        row("tracing", "tracing at 100% sampling", "overhead <= 15% (ratio >= 0.85)", 0.15),
        row("both", "metrics + tracing at 100%", "overhead <= 15% (ratio >= 0.85)", 0.15),
    ]
    return [r.as_dict() for r in rows]


if __name__ == "__main__":
    import os

    from bench.__main__ import main

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(["--only", "observability", "--quick"])
