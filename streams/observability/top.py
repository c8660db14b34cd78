"""``rspp top``: one deployment at a glance, from its log and a processor's ``/metrics``.

The log (read_committed, folded incrementally) gives sessions, open turns and turn
outcomes; the metrics endpoint gives the latency percentiles, control wait, sheds, DLQ
and consumer lag. Without an endpoint the lag is read from the broker directly.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.table import Table

from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.abi.errors import CodecError
from streams.observability.errors import ObservabilityError
from streams.observability.lag import LagReader
from streams.topics import Lane, TopicLayout

__all__ = ["LogFold", "TopView", "histogram_quantile", "read_metrics"]

_LATENCIES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("first audio", "rspp_turn_first_audio_seconds", {}),
    ("stt final", "rspp_stage_latency_seconds", {"stage": "stt_final"}),
    ("respond", "rspp_stage_latency_seconds", {"stage": "respond"}),
    ("tts first chunk", "rspp_stage_latency_seconds", {"stage": "tts_first_chunk"}),
    ("control wait", "rspp_control_wait_seconds", {}),
    ("txn commit", "rspp_transaction_commit_seconds", {}),
)
_QUANTILES = (0.5, 0.95, 0.99)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets, interpolated
    linearly inside its bucket as PromQL's ``histogram_quantile`` does; None when empty."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower  # in the +Inf bucket: the highest finite bound
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def read_metrics(url: str, *, timeout: float = 5.0) -> Samples:
    """Scrape ``url`` and parse it (prometheus-client's parser)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            text = resp.read().decode()
    except (OSError, urllib.error.URLError) as exc:
        raise ObservabilityError(f"--metrics {url}: {exc}") from exc
    samples: Samples = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    except ValueError as exc:
        raise ObservabilityError(f"--metrics {url}: not a Prometheus exposition: {exc}") from exc
    return samples


def _buckets(samples: Samples, name: str, labels: dict[str, str]) -> list[tuple[float, float]]:
    out = []
    for (n, lab), value in samples.items():
        if n != f"{name}_bucket":
            continue
        d = dict(lab)
        le = d.pop("le", None)
        if le is not None and d == labels:
            out.append((float(le), value))
    return out


def _sum_by(samples: Samples, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, lab), value in samples.items():
        if n == name:
            key = dict(lab).get(label, "")
            out[key] = out.get(key, 0.0) + value
    return out


@dataclass(slots=True)
class LogFold:
    """Sessions and turns of a deployment, folded from ``<prefix>.log`` as it grows."""

    bootstrap: str
    prefix: str
    sessions: set[tuple[str, str]] = field(default_factory=set)
    open_turns: set[tuple[str, str, str]] = field(default_factory=set)
    outcomes: Counter[str] = field(default_factory=Counter)
    undecodable: int = 0
    _consumer: Any = None
    _codec: EventCodec = field(default_factory=EventCodec)
    _at_end: set[int] = field(default_factory=set)
    _partitions: int = 0

    def _open(self) -> None:
        topic = TopicLayout(prefix=self.prefix).log
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"rspp-top-{self.prefix}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 50,
            }
        )
        meta = self._consumer.list_topics(topic, timeout=10)
        info = meta.topics.get(topic)
        if info is None or info.error is not None:
            self._consumer.close()
            self._consumer = None
            raise ObservabilityError(f"--prefix {self.prefix}: no log topic {topic}")
        self._partitions = len(info.partitions)
        self._consumer.assign([TopicPartition(topic, p, 0) for p in sorted(info.partitions)])

    def poll(self, *, max_records: int = 50_000, timeout: float = 0.2) -> bool:
        """Fold what arrived; True when every partition was read to its end."""
        try:
            if self._consumer is None:
                self._open()
            for _ in range(max_records // 500 + 1):
                msgs = self._consumer.consume(num_messages=500, timeout=timeout)
                if not msgs:
                    break
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            self._at_end.add(msg.partition())
                        continue
                    self._at_end.discard(msg.partition())
                    self._fold(msg.value())
                if len(self._at_end) >= self._partitions:
                    break
        except KafkaException as exc:
            raise ObservabilityError(f"reading {self.prefix}.log: {exc}") from exc
        return len(self._at_end) >= self._partitions

    def _fold(self, value: bytes | None) -> None:
        try:
            event = self._codec.decode(value or b"")
        except CodecError:
            self.undecodable += 1
            return
        p, key = event.payload, (event.tenant_id, event.session_id)
        if isinstance(p, ev.Admit):
            self.sessions.add(key)
        elif isinstance(p, ev.SessionClose | ev.Reject):
            self.sessions.discard(key)
        elif isinstance(p, ev.TurnOpen) and event.turn_id:
            self.open_turns.add((*key, event.turn_id))
        elif isinstance(p, ev.TurnClose) and event.turn_id:
            self.open_turns.discard((*key, event.turn_id))
            self.outcomes[p.outcome.value.lower()] += 1

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class TopView:
    """What ``rspp top`` shows, refreshed by :meth:`refresh`."""

    def __init__(self, *, bootstrap: str, prefix: str, group: str, metrics_url: str | None) -> None:
        self.prefix = prefix
        self.metrics_url = metrics_url
        self.log = LogFold(bootstrap=bootstrap, prefix=prefix)
        layout = TopicLayout(prefix=prefix, partitions=1)
        # Without an endpoint the lag comes from the broker (the same computation).
        self._lag = (
            None
            if metrics_url
            else LagReader(
                bootstrap=bootstrap, group=group, topics=[layout.lane_topic(lane) for lane in Lane]
            )
        )
        self.samples: Samples = {}
        self.lag_rows: list[dict[str, Any]] = []

    def refresh(self) -> bool:
        caught_up = self.log.poll()
        if self.metrics_url:
            self.samples = read_metrics(self.metrics_url)
            self.lag_rows = [
                {
                    "topic": dict(lab)["topic"],
                    "partition": int(dict(lab)["partition"]),
                    "lag": int(v),
                }
                for (n, lab), v in sorted(self.samples.items())
                if n == "rspp_consumer_lag_records"
            ]
        elif self._lag is not None:
            self.lag_rows = [
                {"topic": r.topic, "partition": r.partition, "lag": r.lag} for r in self._lag.read()
            ]
        return caught_up

    def snapshot(self) -> dict[str, Any]:
        latencies: dict[str, dict[str, float | None]] = {}
        for title, name, labels in _LATENCIES:
            buckets = _buckets(self.samples, name, labels)
            latencies[title] = {
                f"p{round(q * 100)}": histogram_quantile(q, buckets) for q in _QUANTILES
            }
        s = self.samples
        return {
            "prefix": self.prefix,
            "sessions": len(self.log.sessions),
            "open_turns": len(self.log.open_turns),
            "turns": dict(self.log.outcomes),
            "latency_seconds": latencies if self.metrics_url else None,
            "shed": _sum_by(s, "rspp_shed_records_total", "lane") if self.metrics_url else None,
            "dlq": _sum_by(s, "rspp_dlq_records_total", "reason") if self.metrics_url else None,
            "lag": self.lag_rows,
        }

    def render(self) -> Group:
        snap = self.snapshot()
        head = Table.grid(padding=(0, 2))
        head.add_row(
            f"[bold]{snap['prefix']}[/]",
            f"sessions {snap['sessions']}",
            f"open turns {snap['open_turns']}",
            "turns " + " ".join(f"{k} {v}" for k, v in sorted(snap["turns"].items())),
        )
        parts: list[Any] = [head]
        if snap["latency_seconds"] is not None:
            lat = Table(title="latency (ms)", title_justify="left")
            lat.add_column("")
            for q in _QUANTILES:
                lat.add_column(f"p{round(q * 100)}", justify="right")
            for title, values in snap["latency_seconds"].items():
                lat.add_row(
                    title, *("—" if v is None else f"{v * 1000:.0f}" for v in values.values())
                )
            parts.append(lat)
            counts = Table(title="shed / dlq", title_justify="left")
            counts.add_column("what")
            counts.add_column("count", justify="right")
            for lane, n in sorted(snap["shed"].items()):
                counts.add_row(f"shed {lane}", f"{n:.0f}")
            for reason, n in sorted(snap["dlq"].items()):
                counts.add_row(f"dlq {reason}", f"{n:.0f}")
            parts.append(counts)
        lag = Table(title="consumer lag (read_committed)", title_justify="left")
        for col in ("topic", "partition", "lag"):
            lag.add_column(col, justify="right" if col != "topic" else "left")
        for row in snap["lag"]:
            lag.add_row(row["topic"], str(row["partition"]), str(row["lag"]))
        parts.append(lag)
        return Group(*parts)

    def close(self) -> None:
        self.log.close()
        if self._lag is not None:
            self._lag.close()
