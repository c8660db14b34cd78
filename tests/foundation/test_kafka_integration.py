"""The foundation against a real broker: round trip, transactions, fencing, topics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.errors import TopicLayoutError
from streams.topics import (
    TopicLayout,
    TopicRole,
    apply_topics,
    delete_topics,
    describe_topics,
    topic_names,
)

pytestmark = pytest.mark.kafka


def _consume_all(
    bootstrap: str, topic: str, *, group: str, expect: int, isolation: str, timeout: float = 20.0
) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.subscribe([topic])
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    # Poll until we have what we expect, then a little longer to catch extras.
    quiet_until: float | None = None
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            out.append(msg.value() or b"")
        if len(out) >= expect:
            quiet_until = quiet_until or time.monotonic() + 1.0
            if time.monotonic() > quiet_until:
                break
    consumer.close()
    return out


def test_produce_consume_round_trip(kafka_bootstrap: str, unique_prefix: Callable[[], str]) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=3)
    apply_topics(kafka_bootstrap, layout)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = [f"event-{i}".encode() for i in range(50)]
    for i, value in enumerate(sent):
        producer.produce(layout.data, value, key=f"s{i % 5}", headers=[("rspp_lane", b"data")])
    assert producer.flush(10) == 0
    got = _consume_all(
        kafka_bootstrap, layout.data, group=unique_prefix(), expect=50, isolation="read_committed"
    )
    assert sorted(got) == sorted(sent)


def test_transaction_commit_and_abort_read_committed(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=1)
    apply_topics(kafka_bootstrap, layout)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": unique_prefix()})
    producer.init_transactions(10)

    producer.begin_transaction()
    for i in range(5):
        producer.produce(layout.log, f"committed-{i}".encode(), key="s")
    producer.commit_transaction(10)

    producer.begin_transaction()
    for i in range(5):
        producer.produce(layout.log, f"aborted-{i}".encode(), key="s")
    producer.flush(10)  # the aborted records do reach the log, as uncommitted data
    producer.abort_transaction(10)

    committed = _consume_all(
        kafka_bootstrap, layout.log, group=unique_prefix(), expect=5, isolation="read_committed"
    )
    assert committed == [f"committed-{i}".encode() for i in range(5)]
    everything = _consume_all(
        kafka_bootstrap, layout.log, group=unique_prefix(), expect=10, isolation="read_uncommitted"
    )
    assert len(everything) == 10 and b"aborted-0" in everything


def test_second_producer_with_same_transactional_id_fences_the_first(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=1)
    apply_topics(kafka_bootstrap, layout)
    txn_id = unique_prefix()
    zombie = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": txn_id})
    zombie.init_transactions(10)
    zombie.begin_transaction()
    zombie.produce(layout.log, b"from-zombie", key="s")
    zombie.flush(10)

    successor = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": txn_id})
    successor.init_transactions(10)  # bumps the producer epoch: the zombie is fenced
    successor.begin_transaction()
    successor.produce(layout.log, b"from-successor", key="s")
    successor.commit_transaction(10)

    with pytest.raises(KafkaException) as excinfo:
        zombie.produce(layout.log, b"late-zombie", key="s")
        zombie.commit_transaction(10)
    err = excinfo.value.args[0]
    assert (
        err.code()
        in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)
        or err.fatal()
    )

    got = _consume_all(
        kafka_bootstrap, layout.log, group=unique_prefix(), expect=1, isolation="read_committed"
    )
    assert got == [b"from-successor"]


def test_topics_apply_is_idempotent_and_configured(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=4)
    created = apply_topics(kafka_bootstrap, layout)
    assert sorted(created) == sorted(layout.topic(r) for r in TopicRole)
    assert apply_topics(kafka_bootstrap, layout) == []
    rows = {r.role: r for r in describe_topics(kafka_bootstrap, layout)}
    assert all(r.exists and r.partitions == 4 for r in rows.values())
    log_cfg = dict(rows[TopicRole.LOG].configs)
    assert log_cfg["cleanup.policy"] == "delete" and log_cfg["retention.ms"] == "-1"
    assert dict(rows[TopicRole.LEASES].configs)["cleanup.policy"] == "compact"
    assert dict(rows[TopicRole.SESSIONS].configs)["cleanup.policy"] == "compact"
    # What the processor writes wraps what it reads: output topics take larger records.
    lane_max = int(dict(rows[TopicRole.DATA].configs)["max.message.bytes"])
    for role in (TopicRole.LOG, TopicRole.DLQ, TopicRole.SESSIONS, TopicRole.LEASES):
        assert int(dict(rows[role].configs)["max.message.bytes"]) >= 2 * lane_max, role


def test_lanes_that_are_not_co_partitioned_are_refused(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=3)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.create_topics(
        [
            NewTopic(layout.control, num_partitions=3, replication_factor=1),
            NewTopic(layout.data, num_partitions=5, replication_factor=1),
        ]
    )
    for f in futures.values():
        f.result(10)
    with pytest.raises(TopicLayoutError, match="not co-partitioned"):
        apply_topics(kafka_bootstrap, layout)


def test_delete_topics_takes_exactly_one_prefix(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    base = unique_prefix()
    doomed, neighbour = TopicLayout(prefix=base, partitions=1), TopicLayout(
        prefix=base + "x", partitions=1
    )
    apply_topics(kafka_bootstrap, doomed)
    apply_topics(kafka_bootstrap, neighbour)
    deleted = delete_topics(kafka_bootstrap, starts_with=base + ".")
    assert deleted == sorted(doomed.topic(r) for r in TopicRole)
    assert topic_names(kafka_bootstrap, starts_with=base + ".") == []
    # A prefix that merely starts the same way is another deployment: untouched.
    assert topic_names(kafka_bootstrap, starts_with=base + "x.") == sorted(
        neighbour.topic(r) for r in TopicRole
    )
    assert delete_topics(kafka_bootstrap, starts_with=base + ".") == []
    for bad in ("", "__consumer"):
        with pytest.raises(TopicLayoutError, match="refusing"):
            delete_topics(kafka_bootstrap, starts_with=bad)


def test_cli_topics_delete_lists_without_yes_and_deletes_with_it(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    from typer.testing import CliRunner

    from streams.cli import _register, app

    _register()
    prefix = unique_prefix()
    layout = TopicLayout(prefix=prefix, partitions=1)
    apply_topics(kafka_bootstrap, layout)
    args = ["topics", "delete", "--prefix", prefix, "--bootstrap", kafka_bootstrap, "--json"]
    dry = CliRunner().invoke(app, args)
    assert dry.exit_code == 1
    listed = json.loads(dry.stdout)
    assert listed["deleted"] == [] and len(listed["would_delete"]) == len(TopicRole)
    assert len(topic_names(kafka_bootstrap, starts_with=prefix + ".")) == len(TopicRole)
    real = CliRunner().invoke(app, [*args, "--yes"])
    assert real.exit_code == 0, real.output
    assert sorted(json.loads(real.stdout)["deleted"]) == sorted(layout.topic(r) for r in TopicRole)
    assert topic_names(kafka_bootstrap, starts_with=prefix + ".") == []
