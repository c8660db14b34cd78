"""Dispatch order: control strictly first, DATA:TELEMETRY by smooth weights, bounded queues."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.lanes import (
    LaneConfig,
    LaneLimits,
    LaneRecord,
    LaneScheduler,
    LaneWeights,
    RecordPosition,
    SmoothWeightedRoundRobin,
)
from streams.topics import Lane
from tests.lanes._records import record, stream

D, T, C = Lane.DATA, Lane.TELEMETRY, Lane.CONTROL

SMALL = LaneConfig(
    control=LaneLimits(capacity=6, high_watermark=4, low_watermark=1),
    data=LaneLimits(capacity=8, high_watermark=6, low_watermark=2),
    telemetry=LaneLimits(capacity=4, high_watermark=3, low_watermark=1),
)

# An op is a lane to offer the next record of, or None for "dispatch one".
ops_strategy = st.lists(st.sampled_from([C, D, T, None]), max_size=200)


def test_smooth_weights_interleave_instead_of_bursting() -> None:
    wrr = SmoothWeightedRoundRobin(LaneWeights(data=8, telemetry=1))
    picks = [wrr.pick({D, T}) for _ in range(18)]
    assert picks == [D, D, D, D, T, D, D, D, D] * 2


def test_a_lone_lane_is_served_and_banks_no_credit() -> None:
    wrr = SmoothWeightedRoundRobin(LaneWeights(data=1, telemetry=1))
    assert [wrr.pick({T}) for _ in range(5)] == [T] * 5
    assert wrr.pick(set()) is None
    # Five telemetry-only picks did not build up a telemetry burst.
    assert [wrr.pick({D, T}) for _ in range(4)] == [D, T, D, T]


def test_control_jumps_every_queued_data_record() -> None:
    scheduler = LaneScheduler(LaneConfig())
    for r in stream([D, D, T, D]):
        scheduler.offer(r)
    cancel = record(C, 0, session="s9")
    scheduler.offer(cancel)
    assert scheduler.next() == cancel
    assert [r.lane for r in iter(scheduler.next, None)] == [D, D, D, T]


def test_full_lane_without_shed_policy_refuses_and_keeps_its_records() -> None:
    scheduler = LaneScheduler(SMALL)
    offers = [scheduler.offer(record(D, i)) for i in range(9)]
    assert [o.accepted for o in offers] == [True] * 8 + [False]
    assert [o.at_high_watermark for o in offers[:8]] == [False] * 5 + [True] * 3
    assert scheduler.depth(D) == 8
    assert offers[-1].shed == ()
    assert [r.offset for r in iter(scheduler.next, None)] == list(range(8))


def test_drop_removes_revoked_partitions_and_keeps_order() -> None:
    scheduler = LaneScheduler(LaneConfig())
    for i in range(6):
        scheduler.offer(record(D, i, partition=i % 2))
    dropped = scheduler.drop(lambda r: r.partition == 1)
    assert [r.offset for r in dropped] == [1, 3, 5]
    assert [r.offset for r in iter(scheduler.next, None)] == [0, 2, 4]


def _run(config: LaneConfig, ops: list[Lane | None]) -> tuple[list[LaneRecord], LaneScheduler]:
    scheduler = LaneScheduler(config)
    counters = dict.fromkeys(Lane, 0)
    out: list[LaneRecord] = []
    for i, op in enumerate(ops):
        if op is None:
            nxt = scheduler.next()
            if nxt is not None:
                out.append(nxt)
        else:
            scheduler.offer(record(op, counters[op], session=f"s{i % 4}"))
            counters[op] += 1
    return out, scheduler


@settings(max_examples=200, deadline=None)
@given(ops=ops_strategy)
def test_control_never_waits_when_present(ops: list[Lane | None]) -> None:
    scheduler = LaneScheduler(SMALL)
    counters = dict.fromkeys(Lane, 0)
    for op in ops:
        if op is None:
            control_waiting = scheduler.depth(C) > 0
            nxt = scheduler.next()
            if control_waiting:
                assert nxt is not None and nxt.lane is C
            elif nxt is not None:
                assert nxt.lane is not C
        else:
            scheduler.offer(record(op, counters[op]))
            counters[op] += 1
        for lane in Lane:
            assert scheduler.depth(lane) <= SMALL.limits(lane).capacity


@settings(max_examples=200, deadline=None)
@given(ops=ops_strategy)
def test_same_input_gives_same_dispatch_order_and_lanes_stay_fifo(ops: list[Lane | None]) -> None:
    first, _ = _run(SMALL, ops)
    second, _ = _run(SMALL, ops)
    assert [r.position for r in first] == [r.position for r in second]
    for lane in Lane:
        offsets = [r.offset for r in first if r.lane is lane]
        assert offsets == sorted(offsets)


@settings(max_examples=150, deadline=None)
@given(
    data_weight=st.integers(1, 12),
    telemetry_weight=st.integers(1, 12),
    picks=st.integers(1, 120),
    phase=st.lists(st.sampled_from([D, T]), max_size=10),
)
def test_weight_ratio_holds_over_every_window(
    data_weight: int, telemetry_weight: int, picks: int, phase: list[Lane]
) -> None:
    wrr = SmoothWeightedRoundRobin(LaneWeights(data=data_weight, telemetry=telemetry_weight))
    for lane in phase:  # any history of lone-lane picks first
        assert wrr.pick({lane}) is lane
    window = data_weight + telemetry_weight
    seq = [wrr.pick({D, T}) for _ in range(picks + window)]
    for start in range(picks):
        chunk = seq[start : start + window]
        assert chunk.count(D) == data_weight
        assert chunk.count(T) == telemetry_weight


@settings(max_examples=100, deadline=None)
@given(ops=ops_strategy)
def test_every_offered_record_is_dispatched_queued_or_refused_exactly_once(
    ops: list[Lane | None],
) -> None:
    scheduler = LaneScheduler(SMALL)
    counters = dict.fromkeys(Lane, 0)
    accepted: list[RecordPosition] = []
    refused: list[RecordPosition] = []
    dispatched: list[RecordPosition] = []
    for op in ops:
        if op is None:
            nxt = scheduler.next()
            if nxt is not None:
                dispatched.append(nxt.position)
            continue
        r = record(op, counters[op])
        counters[op] += 1
        (accepted if scheduler.offer(r).accepted else refused).append(r.position)
    left = [r.position for r in iter(scheduler.next, None)]
    assert sorted(dispatched + left, key=repr) == sorted(accepted, key=repr)
    assert not set(refused) & set(accepted)
