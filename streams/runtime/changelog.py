"""Read committed records of some partitions from the beginning up to their end.

Used to restore compacted state (leases, session snapshots) when a processor
gains partitions. The end is the high watermark taken at start; with
``read_committed`` the consumer's position moves past transaction markers, so
"position ≥ end" is the reliable completion test.

A transaction the previous holder has just committed may not have its commit
markers in the partition yet (``commit_transaction`` returns once the coordinator
has decided): until they land, a read_committed end (the last stable offset) stops
before it, and a new holder would miss the latest lease or snapshot. So the end
is the high watermark, and only a transaction still *open* after a short grace
(a writer that died mid-transaction; its records are not committed) is left out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.config import kafka_settings
from streams.runtime.errors import ProcessorError
from streams.topics import OUTPUT_READER_CONFIG

__all__ = ["OPEN_TXN_GRACE_S", "read_to_end"]

# Commit markers of a decided transaction land within milliseconds; a transaction still
# open after this long belongs to a writer that is gone or slow, and is left out.
OPEN_TXN_GRACE_S = 1.0
_BATCH = 1000
_ASK_EVERY_S = 0.5


def read_to_end(
    bootstrap: str, topic: str, partitions: Iterable[int], *, timeout: float = 30.0
) -> Iterator[Any]:
    """Yield every committed message of ``topic``'s ``partitions`` that existed at call time."""
    wanted = sorted(set(partitions))
    if not wanted:
        return
    # Every topic read here is one the processor writes: its records may be that large.
    settings = {**kafka_settings(bootstrap), **OUTPUT_READER_CONFIG, "enable.auto.commit": False}
    consumer = Consumer(
        {
            **settings,
            "group.id": f"rspp-restore-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
        }
    )
    # Watermarks through a read_uncommitted client: the high watermark, not the stable offset.
    peek = Consumer(
        {**settings, "group.id": "rspp-restore-peek", "isolation.level": "read_uncommitted"}
    )
    try:
        ends: dict[int, int] = {}
        starts: dict[int, int] = {}
        for p in wanted:
            low, high = peek.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            # The reader asks too: it connects to the partition leader now (~0.5 s faster).
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                ends[p], starts[p] = high, low
        if not ends:
            return
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        remaining = dict(ends)
        stalled: dict[int, tuple[int, float]] = {}  # partition -> (position, since)
        asked: dict[int, float] = {}  # partition -> when its stable offset was last asked
        while remaining:
            now = time.monotonic()
            if now > deadline:
                at = _positions(consumer, topic, remaining, starts)
                where = ", ".join(
                    f"{p}: at {at[p]} of {end}" for p, end in sorted(remaining.items())
                )
                raise ProcessorError(f"restoring {topic} timed out after {timeout:.0f}s ({where})")
            batch: list[Any] = consumer.consume(_BATCH, 0.1)
            for msg in batch:
                if msg.error() is None and msg.offset() < ends[msg.partition()]:
                    yield msg
            done = []
            for p, pos in _positions(consumer, topic, remaining, starts).items():
                seen, since = stalled.get(p, (pos, now))
                stalled[p] = (pos, since if seen == pos else now)
                if pos >= remaining[p]:
                    done.append(p)
                # Ask the broker for the stable offset at most every half second per stalled
                # partition: its records may still be queued behind other partitions' (a round
                # trip per delivered record made a busy restore crawl past its timeout).
                elif (
                    seen == pos
                    and now - since > OPEN_TXN_GRACE_S
                    and now - asked.get(p, 0.0) >= _ASK_EVERY_S
                ):
                    asked[p] = now
                    if _caught_up(consumer, topic, p, pos):
                        done.append(p)  # what is left is an open transaction: not committed
            if done:
                # Stop fetching what is read: live writers keep appending past the end.
                consumer.pause([TopicPartition(topic, p) for p in done])
                for p in done:
                    remaining.pop(p)
    finally:
        consumer.close()
        peek.close()


def _positions(
    consumer: Any, topic: str, partitions: Iterable[int], starts: dict[int, int]
) -> dict[int, int]:
    """Read positions; before a partition's first record arrives it is at its start."""
    tps = consumer.position([TopicPartition(topic, p) for p in partitions])
    # A partition holding only an open transaction never delivers a record, so its position
    # stays "invalid" (< 0); it is then at the start, where the stable offset also is.
    return {tp.partition: tp.offset if tp.offset >= 0 else starts[tp.partition] for tp in tps}


def _caught_up(consumer: Any, topic: str, partition: int, pos: int) -> bool:
    """True when the read_committed position has reached the last stable offset."""
    _, stable = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
    return pos >= int(stable)
