"""LaneIngress against a real broker: routing, DLQ, priority, pause/resume, shedding, offsets."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.lanes import (
    IngressMode,
    LaneConfig,
    LaneIngress,
    LaneLimits,
    LaneRecord,
    ShedDecision,
    ShedPolicy,
)
from streams.topics import Lane, TopicLayout, apply_topics

pytestmark = pytest.mark.kafka

PARTITIONS = 2
MODES = [IngressMode.SHARED, IngressMode.DEDICATED_CONTROL]


def _layout(bootstrap: str, prefix: str) -> TopicLayout:
    layout = TopicLayout(prefix=prefix, partitions=PARTITIONS)
    apply_topics(bootstrap, layout)
    return layout


def _produce(
    bootstrap: str, layout: TopicLayout, items: list[tuple[Lane, str, list[tuple[str, str | bytes | None]]]]
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for lane, session, headers in items:
        producer.produce(layout.lane_topic(lane), key=session, value=b"body", headers=headers)
    assert producer.flush(10) == 0


def _hdrs(lane: Lane, session: str) -> list[tuple[str, str | bytes | None]]:
    return [("rspp_lane", lane.value.encode()), ("rspp_session", session.encode())]


def _wait(condition: Callable[[], bool], ingress: LaneIngress, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        ingress.poll(0.05)


def _end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "lanes-test-watermarks"})
    try:
        ends = {}
        for topic in topics:
            for p in range(PARTITIONS):
                high = probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                if high > 0:
                    ends[(topic, p)] = high
        return ends
    finally:
        probe.close()


def _positions(ingress: LaneIngress) -> dict[tuple[str, int], int]:
    return {(tp.topic, tp.partition): tp.offset for tp in ingress.positions()}


@pytest.mark.parametrize("mode", MODES)
def test_routes_by_topic_whatever_the_headers_say_and_commits_what_was_handled(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], mode: IngressMode
) -> None:
    layout = _layout(kafka_bootstrap, unique_prefix())
    items = [(Lane.DATA, f"s{i % 4}", _hdrs(Lane.DATA, f"s{i % 4}")) for i in range(20)]
    items += [(Lane.TELEMETRY, f"s{i}", _hdrs(Lane.TELEMETRY, f"s{i}")) for i in range(4)]
    items += [(Lane.CONTROL, f"s{i}", _hdrs(Lane.CONTROL, f"s{i}")) for i in range(4)]
    # Headers are hints: none at all, or a lane header naming another lane, changes nothing.
    items += [(Lane.DATA, "s1", [])]
    items += [(Lane.CONTROL, "s2", [("rspp_lane", b"data"), ("rspp_session", b"s2")])]
    assigned: list[list[tuple[str, int]]] = []
    revoked: list[list[tuple[str, int]]] = []
    ingress = LaneIngress(
        bootstrap=kafka_bootstrap, group_id=unique_prefix(), layout=layout, mode=mode,
        on_assigned=assigned.append, on_revoked=revoked.append,
    )
    got: list[LaneRecord] = []
    try:
        _produce(kafka_bootstrap, layout, items)

        def drained() -> bool:
            got.extend(iter(ingress.next, None))
            return len(got) == len(items)

        _wait(drained, ingress, "all records")
        # Co-partitioned: every partition number of every lane, on this one processor.
        wanted = {(layout.lane_topic(lane), p) for lane in Lane for p in range(PARTITIONS)}
        assert ingress.assignment() == wanted
        assert set(assigned[-1]) == wanted
        bare = [r for r in got if not r.headers]
        assert [(r.lane, r.session) for r in bare] == [(Lane.DATA, "")]
        lying = [r for r in got if ("rspp_lane", b"data") in r.headers and r.key == b"s2"]
        assert [(r.lane, r.session) for r in lying if r.topic == layout.control] == [
            (Lane.CONTROL, "s2")
        ]
        assert {(r.lane, r.topic) for r in got} == {(lane, layout.lane_topic(lane)) for lane in Lane}
        assert all(r.lane is Lane(r.topic.rsplit(".", 1)[1]) for r in got)
        assert all(r.session in (r.key.decode(), "") for r in got if r.key)
        ends = _end_offsets(kafka_bootstrap, [layout.lane_topic(lane) for lane in Lane])
        assert _positions(ingress) == ends  # dispatched and DLQ'd records both count
        assert ingress.group_metadata() is not None
    finally:
        ingress.close()
    assert set(revoked[-1]) == wanted  # close leaves the group through the revoke path


@pytest.mark.parametrize("mode", MODES)
def test_control_is_dispatched_before_buffered_data(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], mode: IngressMode
) -> None:
    layout = _layout(kafka_bootstrap, unique_prefix())
    with LaneIngress(
        bootstrap=kafka_bootstrap, group_id=unique_prefix(), layout=layout, mode=mode,
    ) as ingress:
        _produce(kafka_bootstrap, layout, [(Lane.DATA, "s", _hdrs(Lane.DATA, "s"))] * 50)
        _wait(lambda: ingress.scheduler.depth(Lane.DATA) == 50, ingress, "data buffered")
        _produce(kafka_bootstrap, layout, [(Lane.CONTROL, "s", _hdrs(Lane.CONTROL, "s"))])
        _wait(lambda: ingress.scheduler.depth(Lane.CONTROL) == 1, ingress, "the cancel")
        first = ingress.next()
        assert first is not None and first.lane is Lane.CONTROL
        assert ingress.scheduler.depth(Lane.DATA) == 50


SMALL = LaneConfig(
    control=LaneLimits(capacity=8, high_watermark=6, low_watermark=2),
    data=LaneLimits(capacity=8, high_watermark=6, low_watermark=2),
    telemetry=LaneLimits(capacity=8, high_watermark=6, low_watermark=2),
)


@pytest.mark.parametrize("overflow", [False, True], ids=["fits", "overflow-rewinds"])
@pytest.mark.parametrize("mode", MODES)
def test_full_lane_pauses_its_partitions_and_loses_nothing(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], mode: IngressMode, overflow: bool
) -> None:
    layout = _layout(kafka_bootstrap, unique_prefix())
    n = 120
    with LaneIngress(
        bootstrap=kafka_bootstrap, group_id=unique_prefix(), layout=layout, mode=mode,
        config=SMALL,
    ) as ingress:
        if overflow:
            # Force batches larger than the headroom above the high watermark, so a
            # batch overfills the lane and the ingress must seek back (private knob).
            ingress._batch = 50
        _produce(kafka_bootstrap, layout, [(Lane.DATA, f"s{i % 5}", _hdrs(Lane.DATA, f"s{i % 5}"))
                                           for i in range(n)])
        ends = _end_offsets(kafka_bootstrap, [layout.data])
        _wait(lambda: ingress.scheduler.depth(Lane.DATA) >= 6, ingress, "high watermark")
        data_tps = {(layout.data, p) for p in range(PARTITIONS)}
        assert ingress.paused() == data_tps
        for _ in range(20):  # polling a paused lane adds nothing past capacity
            ingress.poll(0.01)
            assert ingress.scheduler.depth(Lane.DATA) <= SMALL.data.capacity
            assert not any(ingress.lane_idle(layout.data, p) for p in range(PARTITIONS))
        got: list[LaneRecord] = []

        def drained() -> bool:
            while (record := ingress.next()) is not None:
                got.append(record)
                assert ingress.scheduler.depth(Lane.DATA) <= SMALL.data.capacity
            for p in range(PARTITIONS):
                # "Caught up" (what a held SESSION_CLOSE waits for) only once all was read;
                # a pause or a seek back must not leave an old end-of-partition behind.
                if ingress.lane_idle(layout.data, p):
                    assert sum(r.partition == p for r in got) == ends.get((layout.data, p), 0)
            return len(got) == n

        _wait(drained, ingress, "every record after resume", timeout=20)
        _wait(
            lambda: all(ingress.lane_idle(layout.data, p) for p in range(PARTITIONS)),
            ingress,
            "the end of both data partitions",
        )
        assert ingress.paused() == frozenset()
        for p in range(PARTITIONS):
            offsets = [r.offset for r in got if r.partition == p]
            assert offsets == list(range(len(offsets)))  # in order, none lost or duplicated
        assert _positions(ingress) == _end_offsets(kafka_bootstrap, [layout.data])


def test_low_latency_profile_sheds_instead_of_pausing_and_commits_shed_records(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    layout = _layout(kafka_bootstrap, unique_prefix())
    config = LaneConfig(
        control=SMALL.control, data=SMALL.data, telemetry=SMALL.telemetry,
        shedding=ShedPolicy(defaulting_source="profile:low_latency"),
    )
    sheds: list[ShedDecision] = []
    n = 60
    with LaneIngress(
        bootstrap=kafka_bootstrap, group_id=unique_prefix(), layout=layout, config=config,
        on_shed=sheds.append,
    ) as ingress:
        items = [(Lane.DATA, "s", _hdrs(Lane.DATA, "s"))] * n
        items += [(Lane.TELEMETRY, "s", _hdrs(Lane.TELEMETRY, "s"))] * 3
        _produce(kafka_bootstrap, layout, items)

        def shed_count() -> int:
            return sum(d.count for d in sheds)

        _wait(lambda: shed_count() + len(ingress.scheduler) == n + 3, ingress, "all fetched")
        assert ingress.paused() == frozenset()  # data never blocked under low latency
        assert ingress.scheduler.depth(Lane.DATA) == SMALL.data.capacity
        assert {d.defaulting_source for d in sheds} == {"profile:low_latency"}
        kept = [r.offset for r in iter(ingress.next, None) if r.lane is Lane.DATA]
        shed_data = sorted(p.offset for d in sheds if d.lane is Lane.DATA for p in d.offsets)
        # Oldest-first: within the one data partition, the newest records survive.
        assert max(shed_data) < min(kept)
        # Shed records count as handled: the one data partition commits past all n.
        data_positions = [o for (topic, _), o in _positions(ingress).items() if topic == layout.data]
        assert data_positions == [n]
