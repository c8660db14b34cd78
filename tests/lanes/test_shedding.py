"""Shedding under a low-latency profile: deterministic, telemetry first, oldest first, bounded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.lanes import (
    LaneConfig,
    LaneLimits,
    LaneScheduler,
    ShedDecision,
    ShedPolicy,
    ShedVictim,
)
from streams.topics import Lane
from tests.lanes._records import record

D, T, C = Lane.DATA, Lane.TELEMETRY, Lane.CONTROL


def _config(policy: ShedPolicy) -> LaneConfig:
    return LaneConfig(
        control=LaneLimits(capacity=5, high_watermark=3, low_watermark=1),
        data=LaneLimits(capacity=6, high_watermark=4, low_watermark=1),
        telemetry=LaneLimits(capacity=3, high_watermark=2, low_watermark=0),
        shedding=policy,
    )


POLICY = ShedPolicy(rule="low-latency/oldest-first", defaulting_source="profile:low_latency")


def test_full_data_lane_sheds_telemetry_first_then_oldest_data() -> None:
    scheduler = LaneScheduler(_config(POLICY))
    for i in range(2):
        scheduler.offer(record(T, i, session="a"))
    for i in range(6):
        scheduler.offer(record(D, i, session="a" if i % 2 else "b"))
    offer = scheduler.offer(record(D, 6, session="a"))
    assert offer.accepted
    assert [(d.lane, d.session, d.count) for d in offer.shed] == [(T, "a", 2), (D, "b", 1)]
    telemetry, data = offer.shed
    assert [p.offset for p in telemetry.offsets] == [0, 1]
    assert [p.offset for p in data.offsets] == [0]  # the oldest data record
    assert data.rule == "low-latency/oldest-first"
    assert data.defaulting_source == "profile:low_latency"
    assert scheduler.depth(T) == 0 and scheduler.depth(D) == 6
    assert [r.offset for r in iter(scheduler.next, None)] == [1, 2, 3, 4, 5, 6]


def test_newest_victim_drops_the_arrival_and_keeps_the_queue() -> None:
    scheduler = LaneScheduler(_config(ShedPolicy(victim=ShedVictim.NEWEST, lanes=(T,))))
    for i in range(3):
        scheduler.offer(record(T, i))
    offer = scheduler.offer(record(T, 3, session="z"))
    assert offer.shed == (
        ShedDecision(
            lane=T, session="z", rule="low-latency/oldest-first",
            defaulting_source="runtime-default", count=1, offsets=(record(T, 3).position,),
        ),
    )
    assert [r.offset for r in iter(scheduler.next, None)] == [0, 1, 2]


def test_lanes_outside_the_policy_and_control_are_refused_not_shed() -> None:
    scheduler = LaneScheduler(_config(ShedPolicy(lanes=(T,))))
    for i in range(6):
        scheduler.offer(record(D, i))
    assert not scheduler.offer(record(D, 6)).accepted
    for i in range(5):
        scheduler.offer(record(C, i))
    refused = scheduler.offer(record(C, 5))
    assert not refused.accepted and refused.shed == ()


ops_strategy = st.lists(st.sampled_from([C, D, T, None]), max_size=250)
policies = st.builds(
    ShedPolicy,
    lanes=st.sampled_from([(T, D), (D, T), (T,), (D,)]),
    victim=st.sampled_from(list(ShedVictim)),
    batch=st.integers(1, 4),
)


def _run(
    policy: ShedPolicy, ops: list[Lane | None]
) -> tuple[list[ShedDecision], list[tuple[str, int]], LaneScheduler, dict[str, list[int]]]:
    config = _config(policy)
    scheduler = LaneScheduler(config)
    counters = dict.fromkeys(Lane, 0)
    decisions: list[ShedDecision] = []
    dispatched: list[tuple[str, int]] = []
    fate: dict[str, list[int]] = {"offered": [], "refused": []}
    for i, op in enumerate(ops):
        if op is None:
            nxt = scheduler.next()
            if nxt is not None:
                dispatched.append((nxt.topic, nxt.offset))
            continue
        r = record(op, counters[op], session=f"s{i % 3}")
        counters[op] += 1
        queued_before = {lane: scheduler.depth(lane) for lane in Lane}
        offer = scheduler.offer(r)
        fate["offered"].append(1)
        if not offer.accepted:
            fate["refused"].append(1)
            # Refusal only for a full lane the policy does not list.
            assert queued_before[op] == config.limits(op).capacity
            assert not policy.sheds(op)
        for d in offer.shed:
            assert d.lane is not C
            assert d.count == len(d.offsets) > 0
            assert policy.sheds(d.lane)
        decisions.extend(offer.shed)
        for lane in Lane:
            assert scheduler.depth(lane) <= config.limits(lane).capacity
    return decisions, dispatched, scheduler, fate


@settings(max_examples=200, deadline=None)
@given(policy=policies, ops=ops_strategy)
def test_same_input_order_gives_the_same_shed_set(policy: ShedPolicy, ops: list[Lane | None]) -> None:
    first, dispatched_1, _, _ = _run(policy, ops)
    second, dispatched_2, _, _ = _run(policy, ops)
    assert first == second
    assert dispatched_1 == dispatched_2


@settings(max_examples=200, deadline=None)
@given(policy=policies, ops=ops_strategy)
def test_shed_records_are_never_dispatched_and_nothing_vanishes(
    policy: ShedPolicy, ops: list[Lane | None]
) -> None:
    decisions, dispatched, scheduler, fate = _run(policy, ops)
    shed = [(p.topic, p.offset) for d in decisions for p in d.offsets]
    left = [(r.topic, r.offset) for r in iter(scheduler.next, None)]
    assert len(set(shed)) == len(shed)
    assert not set(shed) & set(dispatched)
    # offered = dispatched + still queued + shed + refused: each record accounted once.
    assert len(fate["offered"]) == len(dispatched) + len(left) + len(shed) + len(fate["refused"])


@settings(max_examples=150, deadline=None)
@given(ops=ops_strategy, batch=st.integers(1, 3))
def test_oldest_first_sheds_only_records_older_than_everything_kept(
    ops: list[Lane | None], batch: int
) -> None:
    scheduler = LaneScheduler(_config(ShedPolicy(batch=batch)))
    counters = dict.fromkeys(Lane, 0)
    for op in ops:
        if op is None or (op is C and scheduler.depth(C) == 5):
            scheduler.next()
            continue
        offer = scheduler.offer(record(op, counters[op]))
        counters[op] += 1
        assert offer.accepted  # data and telemetry shed; control is kept below capacity here
        kept = [r.offset for r in scheduler.queued(op)]
        for d in offer.shed:
            if d.lane is op:
                assert len(d.offsets) == batch or d.count == len(d.offsets)
                assert all(p.offset < min(kept) for p in d.offsets)
        if op is D and offer.shed:
            assert scheduler.depth(T) == 0  # telemetry went first
