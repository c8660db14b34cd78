"""Raw confluent-kafka pass-through: consume one topic, produce to another.

This is the baseline every later throughput benchmark is a ratio of: the
fastest a Python process on this machine moves small records through Kafka
with no decoding, no state and no transactions.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bench.harness import BenchRow, fill_topic, scratch_prefix

__all__ = ["passthrough_rate", "run"]

RECORD_SIZE = 100


def passthrough_rate(bootstrap: str, *, source: str, sink: str, count: int) -> float:
    """Consume ``count`` records from ``source`` and produce each to ``sink``; records/s."""
    from confluent_kafka import Consumer, Producer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-passthrough-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 8 * 1024 * 1024,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
            "acks": 1,
        }
    )
    consumer.subscribe([source])
    moved = 0
    started: float | None = None
    deadline = time.monotonic() + 300
    while moved < count and time.monotonic() < deadline:
        batch = consumer.consume(num_messages=5000, timeout=0.5)
        for msg in batch:
            if msg.error() is not None:
                continue
            if started is None:
                started = time.perf_counter()
            while True:
                try:
                    producer.produce(sink, msg.value(), key=msg.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            moved += 1
        producer.poll(0)
    producer.flush(120)
    consumer.close()
    if started is None or moved < count:
        raise RuntimeError(f"pass-through moved only {moved} of {count} records")
    return moved / (time.perf_counter() - started)


def run(*, quick: bool, bootstrap: str) -> list[dict[str, Any]]:
    from streams.topics import TopicLayout, apply_topics

    count = 200_000 if quick else 1_000_000
    layout = TopicLayout(prefix=scratch_prefix("pt"), partitions=6)
    apply_topics(bootstrap, layout)
    produce_rate = fill_topic(bootstrap, layout.data, count=count, size=RECORD_SIZE)
    rate = passthrough_rate(bootstrap, source=layout.data, sink=layout.log, count=count)
    row = BenchRow(
        name=f"raw pass-through ({count:,} x {RECORD_SIZE} B)",
        unit="rec/s",
        value=rate,
        baseline="raw produce (fill)",
        baseline_value=produce_rate,
        goal="baseline for runtime throughput",
        extra={"records": count},
    )
    return [row.as_dict()]


if __name__ == "__main__":
    from bench.__main__ import main

    main(["--only", "passthrough"])
