"""Cancel fencing: after a cancel is processed, no output of its scope passes egress."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.runtime import CancelFence, Scope

TURNS = ["t1", "t2"]
NODES = ["stt", "respond", "tts"]

_output = st.tuples(st.just("out"), st.sampled_from(TURNS), st.sampled_from(NODES))
_cancel = st.one_of(
    st.tuples(st.just("cancel"), st.just(Scope.SESSION), st.none(), st.none()),
    st.tuples(st.just("cancel"), st.just(Scope.TURN), st.sampled_from(TURNS), st.none()),
    st.tuples(
        st.just("cancel"), st.just(Scope.NODE), st.sampled_from(TURNS), st.sampled_from(NODES)
    ),
)


@given(st.lists(st.one_of(_output, _cancel), max_size=40))
def test_no_output_passes_after_a_cancel_of_its_scope(events: list[tuple[object, ...]]) -> None:
    fence = CancelFence()
    cancelled: list[tuple[Scope, str | None, str | None]] = []
    for event in events:
        if event[0] == "cancel":
            _, scope, turn, node = event
            assert isinstance(scope, Scope)
            fence.cancel(scope, turn_id=turn, node_id=node)  # type: ignore[arg-type]
            cancelled.append((scope, turn, node))  # type: ignore[arg-type]
            continue
        _, turn, node = event
        passed = not fence.blocks(turn_id=str(turn), node_id=str(node))
        covered = any(
            s is Scope.SESSION
            or (s is Scope.TURN and t == turn)
            or (s is Scope.NODE and (t, n) == (turn, node))
            for s, t, n in cancelled
        )
        assert passed == (not covered)


def test_node_cancel_leaves_other_nodes_and_turns_alone() -> None:
    fence = CancelFence()
    fence.cancel(Scope.NODE, turn_id="t1", node_id="tts")
    assert fence.blocks(turn_id="t1", node_id="tts")
    assert not fence.blocks(turn_id="t1", node_id="respond")
    assert not fence.blocks(turn_id="t2", node_id="tts")
    fence.forget_turn("t1")
    assert not fence.nodes
