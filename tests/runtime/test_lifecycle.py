"""The turn lifecycle state machine: exactly OPEN → ACTIVE → (COMMIT | ABORT) → CLOSE."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.runtime import (
    LifecycleError,
    Marker,
    TurnState,
    first_violation,
    next_markers_to_close,
)

VALID = [
    [Marker.OPEN, Marker.ACTIVE, Marker.COMMIT, Marker.CLOSE],
    [Marker.OPEN, Marker.ACTIVE, Marker.ABORT, Marker.CLOSE],
]


def _turn() -> TurnState:
    return TurnState(turn_id="t1", session_id="s1", plan_hash="sha256:ab", lease_epoch=3)


@pytest.mark.parametrize("markers", VALID)
def test_valid_lifecycles_advance_to_closed(markers: list[Marker]) -> None:
    state = _turn()
    for m in markers:
        state = state.advance(m, reason="cancelled" if m is Marker.ABORT else None)
    assert state.last is Marker.CLOSE and not state.is_open and state.is_terminal
    assert first_violation(markers) is None


def test_abort_reason_is_kept_and_step_errors_name_the_turn() -> None:
    state = (
        _turn().advance(Marker.OPEN).advance(Marker.ACTIVE).advance(Marker.ABORT, reason="barge-in")
    )
    assert state.abort_reason == "barge-in"
    with pytest.raises(LifecycleError, match="turn t1: COMMIT after ABORT"):
        state.advance(Marker.COMMIT)
    with pytest.raises(LifecycleError, match="ACTIVE before OPEN"):
        _turn().advance(Marker.ACTIVE)


@given(st.lists(st.sampled_from(list(Marker)), max_size=8))
def test_any_sequence_is_valid_iff_it_is_one_of_the_two_lifecycles(markers: list[Marker]) -> None:
    verdict = first_violation(markers)
    assert (verdict is None) == (markers in VALID)
    # The state machine agrees with the checker step by step.
    state = _turn()
    accepted = 0
    for m in markers:
        try:
            state = state.advance(m)
        except LifecycleError:
            break
        accepted += 1
    if verdict is not None and verdict[1].startswith("turn not closed") is False:
        assert accepted == verdict[0]


@given(
    st.sampled_from([[], [Marker.OPEN], [Marker.OPEN, Marker.ACTIVE], VALID[0][:3], VALID[1][:3]])
)
def test_closing_markers_always_complete_a_valid_lifecycle(prefix: list[Marker]) -> None:
    state = _turn()
    for m in prefix:
        state = state.advance(m)
    rest = next_markers_to_close(state)
    if not prefix:
        assert rest == ()
        return
    for m in rest:
        state = state.advance(m, reason="drain")
    assert first_violation([*prefix, *rest]) is None
