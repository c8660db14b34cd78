"""Consumer lag against the last stable offset, on a real broker with open transactions.

A read_committed consumer's ``get_watermark_offsets`` reports the LSO (the first offset
of a transaction still open), not the high watermark; after a commit the marker takes an
offset that no member ever reads, and a caught-up group still reads lag 0.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.observability import LagReader

pytestmark = pytest.mark.kafka


def _topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(name, 1, 1)]).values():
        fut.result(30)


def _high(bootstrap: str, topic: str, isolation: str) -> int:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"probe-{uuid.uuid4().hex[:6]}",
            "isolation.level": isolation,
        }
    )
    try:
        return int(c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1])
    finally:
        c.close()


def _read(member: Consumer, n: int) -> list[Message]:
    got: list[Message] = []
    for _ in range(50):  # one at a time: consume() waits for its whole batch
        got += [m for m in member.consume(1, timeout=0.2) if m.error() is None]
        if len(got) >= n:
            break
    return got


def _lag(reader: LagReader) -> int:
    rows = reader.read()
    assert len(rows) == 1
    return rows[0].lag


def test_lag_counts_only_what_read_committed_can_read(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    prefix = unique_prefix()
    topic, group = f"{prefix}.data", f"{prefix}-group"
    _topic(kafka_bootstrap, topic)
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{prefix}-txn", "linger.ms": 0}
    )
    producer.init_transactions(30)
    reader = LagReader(bootstrap=kafka_bootstrap, group=group, topics=[topic])
    member = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, f"r{i}".encode(), partition=0)
        producer.flush(10)
        # Open transaction: three records in the log, none readable yet.
        assert _high(kafka_bootstrap, topic, "read_uncommitted") == 3
        assert _high(kafka_bootstrap, topic, "read_committed") == 0
        assert _lag(reader) == 0
        producer.commit_transaction(30)
        # Committed: the marker takes offset 3; three records readable, none consumed.
        assert _high(kafka_bootstrap, topic, "read_committed") == 4
        assert _lag(reader) == 3
        producer.begin_transaction()
        producer.produce(topic, b"r3", partition=0)
        producer.flush(10)
        # The member reads everything committed and commits its position; another open
        # transaction follows. A high-watermark exporter would say 2 here.
        member.assign([TopicPartition(topic, 0, 0)])
        got = _read(member, 3)
        member.commit(offsets=[TopicPartition(topic, 0, got[-1].offset() + 1)], asynchronous=False)
        assert [m.value() for m in got] == [b"r0", b"r1", b"r2"]
        assert _lag(reader) == 0  # offset 3 is a marker; r3 is not committed
        producer.commit_transaction(30)
        assert _lag(reader) == 1  # r3 is readable now
        producer.begin_transaction()
        producer.produce(topic, b"r4", partition=0)
        producer.flush(10)
        producer.abort_transaction(30)
        msgs = _read(member, 1)
        assert [m.value() for m in msgs] == [b"r3"]
        member.commit(offsets=[TopicPartition(topic, 0, msgs[-1].offset() + 1)], asynchronous=False)
        # Behind the committed position: a marker, an aborted record, its abort marker.
        assert _lag(reader) == 0
    finally:
        member.close()
        reader.close()
