"""Applying a CANCEL from the control lane: which scope it hits and what it fences.

A cancel of the open turn (or the session) aborts it and fences its egress; a cancel of
one node stops that node only; a cancel that hits nothing in flight (a late barge-in, a
turn already closed) is still recorded, so the log shows what the caller did.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.abi import events as ev
from streams.runtime.fencing import Scope
from streams.runtime.planning import is_past_turn
from streams.runtime.sessions import SessionState
from streams.runtime.turns import ActiveTurn
from streams.runtime.writer import EventWriter

__all__ = ["apply_cancel"]


def apply_cancel(
    writer: EventWriter,
    session: SessionState,
    active: ActiveTurn | None,
    event: ev.Envelope,
    cancel: ev.Cancel,
    *,
    abort: Callable[[ActiveTurn, str], None],
) -> str | None:
    """Record and apply ``cancel``; the DLQ reason when it names nothing that exists."""
    target = cancel.target
    corr = event.correlation.correlation_id
    if cancel.scope is ev.CancelScope.NODE:
        if active is None or target not in active.graph.graph.nodes:
            return f"cancel of node {target[:64]!r}: no such node in an open turn"
        writer.log(
            session, cancel, turn=active.stamp, event_id=event.event_id, ts=event.ts, node_id=target
        )
        session.fence.cancel(Scope.NODE, turn_id=active.state.turn_id, node_id=target)
        active.cancel_node(target)
    elif (
        cancel.scope is ev.CancelScope.TURN
        and target
        and (active is None or target != active.state.turn_id)
    ):
        if not is_past_turn(session, target):
            return f"cancel of unknown turn {target[:64]!r}"
        # Already closed: recorded, no effect.
        writer.log(session, cancel, event_id=event.event_id, ts=event.ts, correlation_id=corr)
    elif active is None:
        # Nothing in flight (late barge-in): record it; it fences nothing that exists.
        writer.log(session, cancel, event_id=event.event_id, ts=event.ts, correlation_id=corr)
    else:
        writer.log(session, cancel, turn=active.stamp, event_id=event.event_id, ts=event.ts)
        scope = Scope.SESSION if cancel.scope is ev.CancelScope.SESSION else Scope.TURN
        session.fence.cancel(scope, turn_id=active.state.turn_id)
        abort(active, f"cancelled: {cancel.reason or 'cancel'}")
    return None
