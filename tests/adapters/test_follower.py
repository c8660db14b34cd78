"""The log follower starts where it is told and survives records it cannot decode."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.adapters import LogFollower
from streams.topics import TopicLayout, apply_topics

pytestmark = pytest.mark.kafka


def _write(bootstrap: str, layout: TopicLayout, session: str, *, at_ms: int) -> None:
    codec = EventCodec()
    producer = Producer({"bootstrap.servers": bootstrap})
    event = ev.Envelope.new(
        ev.Admit(reason=None), tenant_id="acme", session_id=session, seq=0, bundle_id="b@1"
    )
    producer.produce(layout.log, codec.encode(event), key=session, partition=0, timestamp=at_ms)
    assert producer.flush(10) == 0


def _wait(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "follower did not catch up"
        time.sleep(0.05)


def test_follower_starts_at_since_ms_and_skips_undecodable_records(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=1)
    apply_topics(kafka_bootstrap, layout)
    now_ms = int(time.time() * 1000)
    _write(kafka_bootstrap, layout, "old-session", at_ms=now_ms - 120_000)
    _write(kafka_bootstrap, layout, "recent-session", at_ms=now_ms - 1_000)

    recent = LogFollower(
        bootstrap=kafka_bootstrap, prefix=layout.prefix, partitions=1, since_ms=now_ms - 30_000
    ).start()
    everything = LogFollower(bootstrap=kafka_bootstrap, prefix=layout.prefix, partitions=1).start()
    try:
        _wait(lambda: everything.events == 2 and recent.events == 1)
        # A record no build of ours can decode: counted, skipped, the follower keeps going.
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(layout.log, b"\x00garbage", key="x", partition=0)
        assert producer.flush(10) == 0
        _write(kafka_bootstrap, layout, "later-session", at_ms=int(time.time() * 1000))
        _wait(lambda: recent.events == 2 and recent.undecodable == 1)
        assert set(recent.sessions) == {"recent-session", "later-session"}
        assert set(everything.sessions) >= {"old-session", "recent-session"}
    finally:
        recent.stop()
        everything.stop()


def test_follower_with_nothing_after_since_ms_follows_from_the_end(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = TopicLayout(prefix=unique_prefix(), partitions=1)
    apply_topics(kafka_bootstrap, layout)
    _write(kafka_bootstrap, layout, "old-session", at_ms=int(time.time() * 1000) - 120_000)
    follower = LogFollower(
        bootstrap=kafka_bootstrap,
        prefix=layout.prefix,
        partitions=1,
        since_ms=int(time.time() * 1000),
    ).start()
    try:
        time.sleep(1.0)  # let it settle at the end of the partition
        _write(kafka_bootstrap, layout, "new-session", at_ms=int(time.time() * 1000))
        _wait(lambda: follower.events == 1)
        assert set(follower.sessions) == {"new-session"}
    finally:
        follower.stop()
