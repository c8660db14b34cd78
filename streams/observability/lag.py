"""Consumer lag of a processor group, correct for transactional (read_committed) input.

Lag is what a read_committed member can still read: the partition's last stable offset
(LSO: the first offset of a transaction still open, else the high watermark) minus the
group's committed offset. A high-watermark-based exporter counts the records of open
transactions (not readable yet) and the commit markers as lag. A read_committed consumer's
``get_watermark_offsets`` reports the LSO as its high mark (checked against a broker in
tests/observability/test_lag.py). What remains is the markers: a group that read everything
of a transactional topic commits the offset after the last record, one short of the marker
behind it. When the gap is small, :class:`LagReader` counts the records readable in it
(a caught-up group reads 0); a larger gap is reported as it is (markers included).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.observability.errors import ObservabilityError

__all__ = ["LagReader", "PartitionLag"]

# Gaps up to this many offsets are read to count their readable records exactly.
_PROBE_GAP = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionLag:
    topic: str
    partition: int
    stable_offset: int  # LSO (read_committed high mark)
    committed: int | None  # None: the group has committed nothing here
    lag: int


class LagReader:
    """Reads a group's lag on ``topics``; a standalone consumer, never a group member."""

    def __init__(
        self, *, bootstrap: str, group: str, topics: Sequence[str], timeout_s: float = 5.0
    ) -> None:
        self.group = group
        self.topics = tuple(topics)
        self.timeout_s = timeout_s
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            # The group's committed offsets are read under its id; this consumer never
            # subscribes, so it does not join the group or move its offsets.
            "group.id": group,
            "client.id": f"rspp-lag-{uuid.uuid4().hex[:6]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
        self._consumer = Consumer(settings)
        # The probe assigns partitions itself: a separate consumer, not the group's id.
        # (short fetch waits: the end of the partition is the answer it waits for).
        self._probe = Consumer(
            {**settings, "group.id": f"{group}.lag-probe", "fetch.wait.max.ms": 10}
        )
        self._lock = threading.Lock()  # scrapes may overlap; librdkafka handles are shared

    def read(self) -> list[PartitionLag]:
        with self._lock:
            try:
                return self._read()
            except KafkaException as exc:
                raise ObservabilityError(f"consumer lag of group {self.group}: {exc}") from exc

    def _read(self) -> list[PartitionLag]:
        meta = self._consumer.list_topics(timeout=self.timeout_s)
        tps = [
            TopicPartition(topic, p)
            for topic in self.topics
            if topic in meta.topics and meta.topics[topic].error is None
            for p in sorted(meta.topics[topic].partitions)
        ]
        if not tps:
            return []
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in self._consumer.committed(tps, timeout=self.timeout_s)
        }
        rows = []
        for tp in tps:
            low, lso = self._consumer.get_watermark_offsets(
                tp, timeout=self.timeout_s, cached=False
            )
            done = committed.get((tp.topic, tp.partition), -1)
            start = done if done >= 0 else low
            lag = max(0, lso - start)
            if 0 < lag <= _PROBE_GAP:
                readable = self._readable(tp.topic, tp.partition, start, lso)
                lag = lag if readable is None else readable
            rows.append(
                PartitionLag(
                    topic=tp.topic,
                    partition=tp.partition,
                    stable_offset=lso,
                    committed=done if done >= 0 else None,
                    lag=lag,
                )
            )
        return rows

    def _readable(self, topic: str, partition: int, start: int, end: int) -> int | None:
        """How many records a read_committed read of [start, end) returns (transaction
        markers and aborted records are skipped); None when that was not settled in time."""
        self._probe.assign([TopicPartition(topic, partition, start)])
        count = 0
        try:
            for _ in range(2 * _PROBE_GAP):
                # One at a time: consume() waits for its whole batch or the timeout.
                msgs = self._probe.consume(num_messages=1, timeout=min(1.0, self.timeout_s))
                for msg in msgs:
                    offset = msg.offset()
                    if msg.error() is not None or offset is None or offset >= end:
                        return count  # partition EOF (at the LSO) or past the gap
                    count += 1
            return None
        finally:
            self._probe.unassign()

    def close(self) -> None:
        with self._lock:
            self._consumer.close()
            self._probe.close()
