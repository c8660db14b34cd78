"""Shared pieces of the benchmark runner: result rows, tables, JSON, Kafka fill helpers.

Every benchmark measures the project and its baseline in the same run and
reports the ratio, so the figures survive a noisy, shared machine.
"""

from __future__ import annotations

import json
import platform
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BenchRow",
    "drop_scratch_topics",
    "fill_topic",
    "print_rows",
    "scratch_prefix",
    "write_results",
]

# One token per bench process: every prefix it makes starts with bench-<token>-, so the run
# can delete exactly its own topics at the end (a broker that keeps them runs out of files).
_RUN = uuid.uuid4().hex[:6]


def scratch_prefix(kind: str) -> str:
    """A fresh deployment prefix for one measurement; dropped by ``drop_scratch_topics``."""
    return f"bench-{_RUN}-{kind}-{uuid.uuid4().hex[:6]}"


def drop_scratch_topics(bootstrap: str) -> list[str]:
    """Delete the topics of every prefix this process got from ``scratch_prefix``."""
    from streams.topics import delete_topics

    return delete_topics(bootstrap, starts_with=f"bench-{_RUN}-")


@dataclass(frozen=True, kw_only=True)
class BenchRow:
    """One measured figure, with the baseline it is compared to."""

    name: str
    unit: str
    value: float
    baseline: str = ""
    baseline_value: float | None = None
    goal: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        return self.value / float(self.baseline_value)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        return out

    @staticmethod
    def from_dict(row: dict[str, Any]) -> BenchRow:
        known = {"name", "unit", "value", "baseline", "baseline_value", "goal", "extra"}
        extra = dict(row.get("extra") or {})
        extra.update({k: v for k, v in row.items() if k not in known | {"ratio"}})
        return BenchRow(
            name=str(row["name"]),
            unit=str(row["unit"]),
            value=float(row["value"]),
            baseline=str(row.get("baseline", "")),
            baseline_value=None
            if row.get("baseline_value") is None
            else float(row["baseline_value"]),
            goal=str(row.get("goal", "")),
            extra=extra,
        )


def print_rows(rows: Sequence[BenchRow], *, title: str = "RSPP benchmarks") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("benchmark", "value", "baseline", "baseline value", "ratio", "goal"):
        table.add_column(col)
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.3f}x"
        base = "-" if r.baseline_value is None else f"{r.baseline_value:,.2f} {r.unit}"
        table.add_row(
            r.name, f"{r.value:,.2f} {r.unit}", r.baseline or "-", base, ratio, r.goal or "-"
        )
    Console().print(table)


def write_results(rows: Sequence[BenchRow], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    payload = {
        "when": stamp,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": _cpus(),
        },
        "rows": [r.as_dict() for r in rows],
    }
    path = out_dir / f"bench-{stamp}.json"
    text = json.dumps(payload, indent=2, sort_keys=True)
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def fill_topic(
    bootstrap: str, topic: str, *, count: int, size: int, partitions_keys: int = 64
) -> float:
    """Produce ``count`` records of ``size`` bytes to ``topic``; return records/s achieved."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
            "enable.idempotence": False,
            "acks": 1,
        }
    )
    payload = b"x" * size
    keys = [f"session-{i}".encode() for i in range(partitions_keys)]
    started = time.perf_counter()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, payload, key=keys[i % partitions_keys])
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    producer.flush(120)
    return count / (time.perf_counter() - started)
