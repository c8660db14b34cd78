"""Commit positions advance only over handled records, whatever order they are handled in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.lanes import OffsetTracker


def test_position_is_last_handled_plus_one_in_order() -> None:
    tracker = OffsetTracker()
    tracker.assign([("t", 0)])
    assert tracker.positions() == {}
    for offset in (10, 11, 12):
        tracker.fetched("t", 0, offset)
    tracker.handled("t", 0, 10)
    assert tracker.positions() == {("t", 0): 11}
    tracker.handled("t", 0, 11)
    tracker.handled("t", 0, 12)
    assert tracker.positions() == {("t", 0): 13}
    assert tracker.in_flight("t", 0) == 0


def test_out_of_order_handling_never_skips_a_queued_record() -> None:
    tracker = OffsetTracker()
    for offset in (0, 1, 2, 5):
        tracker.fetched("t", 0, offset)
    tracker.handled("t", 0, 2)  # e.g. a control-header record on the data topic
    tracker.handled("t", 0, 5)
    assert tracker.positions() == {}
    tracker.handled("t", 0, 0)
    assert tracker.positions() == {("t", 0): 1}
    tracker.handled("t", 0, 1)
    assert tracker.positions() == {("t", 0): 6}  # gaps (txn markers) are fine


def test_revoked_partitions_are_forgotten() -> None:
    tracker = OffsetTracker()
    tracker.fetched("t", 1, 0)
    tracker.handled("t", 1, 0)
    tracker.revoke([("t", 1)])
    tracker.handled("t", 1, 1)  # late, after revoke: ignored
    assert tracker.positions() == {}


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 40))
def test_position_is_the_lowest_unhandled_offset(data: st.DataObject, n: int) -> None:
    offsets = sorted(data.draw(st.sets(st.integers(0, 500), min_size=n, max_size=n)))
    order = data.draw(st.permutations(offsets))
    k = data.draw(st.integers(0, len(order)))
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.fetched("t", 0, offset)
    for offset in order[:k]:
        tracker.handled("t", 0, offset)
    done = set(order[:k])
    pending = [o for o in offsets if o not in done]
    position = tracker.positions().get(("t", 0))
    if pending and pending[0] == offsets[0]:
        assert position is None
    elif pending:
        assert position == max(o for o in offsets if o < pending[0]) + 1
    else:
        assert position == offsets[-1] + 1
