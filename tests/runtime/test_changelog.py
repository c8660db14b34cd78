"""Restoring compacted state reads every decided transaction, and skips a writer's open one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from streams.runtime.changelog import OPEN_TXN_GRACE_S, read_to_end
from streams.topics import TopicLayout, apply_topics

pytestmark = pytest.mark.kafka


def _writer(bootstrap: str, txn_id: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    producer.init_transactions(30)
    return producer


def _died_mid_transaction(
    bootstrap: str, txn_id: str, topic: str, *, committed_to: int | None, open_in: int
) -> Producer:
    """A writer that committed one record (to ``committed_to``, if given), then began a
    transaction with one record in ``open_in`` and never finished it (it died)."""
    producer = _writer(bootstrap, txn_id)
    if committed_to is not None:
        producer.begin_transaction()
        producer.produce(topic, b"committed", key=b"0", partition=committed_to)
        producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b"open", key=b"0", partition=open_in)
    assert producer.flush(10) == 0  # in the partition, never committed
    return producer


def test_a_transaction_committed_just_before_the_read_is_restored(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=1)
    apply_topics(kafka_bootstrap, layout)
    producer = _writer(kafka_bootstrap, unique_prefix())
    for n in range(5):  # a new holder reads right after each commit, as on a fast failover
        producer.begin_transaction()
        producer.produce(layout.leases, f"lease-{n}".encode(), key=b"0", partition=0)
        producer.commit_transaction(30)
        values = [m.value() for m in read_to_end(kafka_bootstrap, layout.leases, [0])]
        assert values[-1] == f"lease-{n}".encode()


@pytest.mark.parametrize(
    ("partitions", "committed_to"),
    [(1, 0), (2, 1)],
    # alone: a new topic whose first writer died mid-transaction delivers nothing, so the
    # reader's position stays unset; it must still count as caught up, not wait out the timeout.
    ids=["after-a-commit", "alone-in-its-partition"],
)
def test_an_open_transaction_is_left_out_after_the_grace(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], partitions: int, committed_to: int
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=partitions)
    apply_topics(kafka_bootstrap, layout)
    producer = _died_mid_transaction(
        kafka_bootstrap, unique_prefix(), layout.leases, committed_to=committed_to, open_in=0
    )
    started = time.monotonic()
    values = [
        m.value()
        for m in read_to_end(kafka_bootstrap, layout.leases, range(partitions), timeout=20)
    ]
    waited = time.monotonic() - started
    assert values == [b"committed"]
    assert waited < OPEN_TXN_GRACE_S + 10, f"waited {waited:.1f}s for an open transaction"
    producer.abort_transaction(30)


def test_a_large_restore_beside_an_open_transaction_finishes(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    # Regression: once the open transaction's partition stalled, every delivered record cost a
    # broker round trip, and a busy restore ran past its timeout.
    layout = TopicLayout(prefix=unique_prefix(), partitions=4)
    apply_topics(kafka_bootstrap, layout)
    stuck = _died_mid_transaction(
        kafka_bootstrap, unique_prefix(), layout.leases, committed_to=0, open_in=0
    )
    writer = _writer(kafka_bootstrap, unique_prefix())
    writer.begin_transaction()
    per_partition = 60_000
    for n in range(per_partition):
        for p in (1, 2, 3):
            while True:
                try:
                    writer.produce(layout.leases, b"x", key=str(n).encode(), partition=p)
                    break
                except BufferError:  # librdkafka's local queue is full: let it drain
                    writer.poll(0.05)
        if n % 10_000 == 0:
            writer.poll(0)
    writer.commit_transaction(60)
    values = [m.value() for m in read_to_end(kafka_bootstrap, layout.leases, range(4), timeout=20)]
    assert len(values) == 3 * per_partition + 1
    assert b"committed" in values and b"open" not in values
    stuck.abort_transaction(30)


def test_an_open_transaction_is_left_out_while_another_partition_is_written(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    # A failover: partition 0 comes from a holder that died mid-transaction, partition 1 from
    # one still committing. The live partition keeps records arriving; the dead one must
    # still be released after the grace (review finding: it waited for an idle batch).
    layout = TopicLayout(prefix=unique_prefix(), partitions=2)
    apply_topics(kafka_bootstrap, layout)
    dead = _died_mid_transaction(
        kafka_bootstrap, unique_prefix(), layout.leases, committed_to=0, open_in=0
    )
    stop = threading.Event()

    def live_writer() -> None:
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0})
        n = 0
        while not stop.is_set():
            producer.produce(layout.leases, b"live", key=f"{n}".encode(), partition=1)
            producer.poll(0)
            n += 1
            stop.wait(0.01)
        producer.flush(10)

    writer = threading.Thread(target=live_writer, daemon=True)
    writer.start()
    try:
        time.sleep(0.5)
        values = [
            m.value() for m in read_to_end(kafka_bootstrap, layout.leases, [0, 1], timeout=15)
        ]
    finally:
        stop.set()
        writer.join(10)
    assert b"committed" in values
    assert b"open" not in values and b"live" in values
    dead.abort_transaction(30)
