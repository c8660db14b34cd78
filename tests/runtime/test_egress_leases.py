"""Transactional egress and lease epochs against a real broker."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.runtime.egress import EgressConfig, TransactionalEgress
from streams.runtime.errors import FencedError, ProcessorError
from streams.runtime.leases import LeaseBook, lease_key, read_latest_epochs
from streams.topics import TopicLayout, apply_topics

pytestmark = pytest.mark.kafka


def _epoch_codec(value: bytes) -> tuple[int, int]:
    part, epoch = value.decode().split(":")
    return int(part), int(epoch)


def _read_committed(bootstrap: str, topic: str, group: str, expect: int) -> list[bytes]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    out: list[bytes] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(out) < expect:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            out.append(m.value() or b"")
    c.close()
    return out


def _group_consumer(bootstrap: str, group: str, topic: str) -> Consumer:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    c.subscribe([topic])
    deadline = time.monotonic() + 15
    while not c.assignment() and time.monotonic() < deadline:
        c.poll(0.1)
    assert c.assignment(), "consumer got no assignment"
    return c


def test_epochs_increase_per_grant_across_processors(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=2)
    apply_topics(kafka_bootstrap, layout)
    group = unique_prefix()
    consumer = _group_consumer(kafka_bootstrap, group, layout.data)
    for holder in ("proc-a", "proc-b", "proc-c"):
        latest = read_latest_epochs(
            kafka_bootstrap, layout.leases, [0, 1], decode_epoch=_epoch_codec
        )
        book = LeaseBook(holder)
        egress = TransactionalEgress(
            EgressConfig(bootstrap=kafka_bootstrap, transactional_id=f"{group}-{holder}")
        )
        for p in (0, 1):
            lease = book.grant(p, latest[p])
            egress.append(
                layout.leases, partition=p, key=lease_key(p), value=f"{p}:{lease.epoch}".encode()
            )
        egress.commit([], consumer.consumer_group_metadata())
        egress.close()
        assert book.epoch(0) == latest[0] + 1
    assert read_latest_epochs(
        kafka_bootstrap, layout.leases, [0, 1], decode_epoch=_epoch_codec
    ) == {0: 3, 1: 3}
    consumer.close()


def test_aborted_lease_is_not_counted(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=1)
    apply_topics(kafka_bootstrap, layout)
    egress = TransactionalEgress(
        EgressConfig(bootstrap=kafka_bootstrap, transactional_id=unique_prefix())
    )
    egress.append(layout.leases, partition=0, key=lease_key(0), value=b"0:7")
    egress.abort()
    assert read_latest_epochs(kafka_bootstrap, layout.leases, [0], decode_epoch=_epoch_codec) == {
        0: 0
    }
    egress.close()


def test_offsets_commit_with_records_and_zombie_is_fenced(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=1)
    apply_topics(kafka_bootstrap, layout)
    group = unique_prefix()
    consumer = _group_consumer(kafka_bootstrap, group, layout.data)
    txn_id = unique_prefix()
    first = TransactionalEgress(EgressConfig(bootstrap=kafka_bootstrap, transactional_id=txn_id))
    first.append(layout.log, partition=0, key=b"s", value=b"out-1")
    first.commit([TopicPartition(layout.data, 0, 5)], consumer.consumer_group_metadata())
    committed = consumer.committed([TopicPartition(layout.data, 0)], timeout=10)
    assert committed[0].offset == 5

    first.append(layout.log, partition=0, key=b"s", value=b"zombie-write")
    successor = TransactionalEgress(
        EgressConfig(bootstrap=kafka_bootstrap, transactional_id=txn_id)
    )
    # The zombie's first failure is either the fencing itself or, when the broker had
    # already aborted its open transaction for the successor, an abortable error; the
    # retry a zombie would make must then meet the fence. Nothing it wrote may commit.
    with pytest.raises(ProcessorError) as first_failure:
        first.append(layout.log, partition=0, key=b"s", value=b"zombie-2")
        first.commit([TopicPartition(layout.data, 0, 9)], consumer.consumer_group_metadata())
    if not isinstance(first_failure.value, FencedError):
        assert "transaction aborted" in str(first_failure.value), first_failure.value
        with pytest.raises(FencedError):
            first.append(layout.log, partition=0, key=b"s", value=b"zombie-3")
            first.commit([TopicPartition(layout.data, 0, 9)], consumer.consumer_group_metadata())
    successor.append(layout.log, partition=0, key=b"s", value=b"out-2")
    successor.commit([], consumer.consumer_group_metadata())
    assert _read_committed(kafka_bootstrap, layout.log, unique_prefix(), 2) == [b"out-1", b"out-2"]
    assert consumer.committed([TopicPartition(layout.data, 0)], timeout=10)[0].offset == 5
    successor.close()
    consumer.close()


def test_lease_book_authority() -> None:
    book = LeaseBook("me")
    book.grant(3, 4)
    assert book.epoch(3) == 5 and book.holds(3, 5) and not book.holds(3, 4)
    assert book.is_stale(3, 4) and not book.is_stale(3, 5) and not book.is_stale(3, None)
    book.revoke([3])
    with pytest.raises(FencedError):
        book.epoch(3)


def test_a_transaction_holding_a_control_effect_is_due_sooner(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=1)
    apply_topics(kafka_bootstrap, layout)
    egress = TransactionalEgress(
        EgressConfig(
            bootstrap=kafka_bootstrap,
            transactional_id=unique_prefix(),
            commit_interval_ms=60_000,
            urgent_commit_ms=1,
        )
    )
    assert not egress.due(urgent=True)  # nothing open: nothing to commit
    egress.append(layout.log, partition=0, key=b"s", value=b"turn-abort")
    time.sleep(0.01)
    # The interval is a minute away; a barge-in's abort must not wait for it.
    assert not egress.due()
    assert egress.due(urgent=True)
    group = _group_consumer(kafka_bootstrap, unique_prefix(), layout.data)
    egress.commit([], group.consumer_group_metadata())
    assert not egress.due(urgent=True)
    assert _read_committed(kafka_bootstrap, layout.log, unique_prefix(), 1) == [b"turn-abort"]
    egress.close()
    group.close()
