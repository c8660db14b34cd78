"""Read committed records of some partitions from the beginning up to their end.

Used to restore compacted state (leases, session snapshots) when a processor
gains partitions. The end is the high watermark taken at start; with
``read_committed`` the consumer's position moves past transaction markers, so
"position ≥ end" is the reliable completion test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.runtime.errors import ProcessorError

__all__ = ["read_to_end"]


def read_to_end(
    bootstrap: str, topic: str, partitions: Iterable[int], *, timeout: float = 30.0
) -> Iterator[Any]:
    """Yield every committed message of ``topic``'s ``partitions`` that existed at call time."""
    wanted = sorted(set(partitions))
    if not wanted:
        return
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"rspp-restore-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        ends: dict[int, int] = {}
        for p in wanted:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                ends[p] = high
        if not ends:
            return
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        remaining = dict(ends)
        while remaining:
            if time.monotonic() > deadline:
                raise ProcessorError(
                    f"restoring {topic} partitions {sorted(remaining)} timed out after {timeout:.0f}s"
                )
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                yield msg
            for p in list(remaining):
                pos = consumer.position([TopicPartition(topic, p)])[0].offset
                if pos >= remaining[p]:
                    remaining.pop(p)
    finally:
        consumer.close()
