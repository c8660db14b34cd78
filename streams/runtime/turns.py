"""One accepted turn in flight: its frozen plan, its graph run, its input feeder.

The processor loop owns the turn's lifecycle state and writes every event;
this object only moves items into the graph in order, through a bounded
feeder queue, and tells the loop what the graph reported. Node reports arrive
on the processor's report queue tagged with the turn id, so a report of a
turn that has already been closed (cancelled, aborted) is recognised and
dropped instead of reaching egress.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from pipelines.plans import FrozenTurnPlan
from streams.abi import events as ev
from streams.nodes import EndOfInput, Item, Report, TurnOutcome, TurnRun
from streams.runtime.graphs import PlanGraph
from streams.runtime.lifecycle import Marker, TurnState, next_markers_to_close
from streams.runtime.sessions import SessionKey, SessionState
from streams.runtime.writer import EventWriter, TurnStamp

__all__ = ["ActiveTurn", "TurnEnded", "TurnKey", "close_left_open"]


class TurnKey(NamedTuple):
    """A turn's identity on a processor: turn ids are unique per session, not per tenant."""

    tenant: str
    turn_id: str


def close_left_open(writer: EventWriter, session: SessionState) -> bool:
    """Abort (reason ``failover``) and close the turn a previous owner left open.

    Returns True when there was one. Its graph ran in the dead process; only the
    lifecycle markers it still owes are written, so the turn stays well formed.
    """
    if session.turn is None or not session.turn.is_open:
        return False
    stamp = TurnStamp(
        turn_id=session.turn.turn_id,
        plan_hash=session.turn.plan_hash,
        bundle_id=session.bundle_id,
        correlation_id=session.turn_correlation or session.session_id,
    )
    state = session.turn
    end: ev.Envelope | None = None
    for marker in next_markers_to_close(state):
        if marker is Marker.ACTIVE:
            writer.log(session, ev.TurnActive(trigger="failover"), turn=stamp)
        elif marker is Marker.ABORT:
            end = writer.log(session, ev.TurnAbort(reason="failover"), turn=stamp)
        else:
            writer.log(
                session,
                ev.TurnClose(outcome=ev.TurnOutcome.ABORTED),
                turn=stamp,
                causation_id=end.event_id if end else None,
            )
        state = state.advance(marker, reason="failover")
    session.turn = state
    session.turns_done += 1
    return True


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """Posted on the report queue when a turn's graph has finished."""

    outcome: TurnOutcome


@dataclass(slots=True, kw_only=True)
class ActiveTurn:
    """Runtime handle of one open turn (never serialised: the snapshot holds the durable part)."""

    state: TurnState
    stamp: TurnStamp
    plan: FrozenTurnPlan
    graph: PlanGraph
    session_key: SessionKey
    opened_ns: int
    input_closed: bool = False
    outputs: int = 0
    accepted: int = 0
    playback_started: bool = False
    shed_inputs: int = 0
    last_input_event: str | None = None
    last_event_by_node: dict[str, str] = field(default_factory=dict)
    last_output_ns: dict[str, int] = field(default_factory=dict)
    first_output_ns: int | None = None
    run: TurnRun | None = None
    _pending: deque[Item | EndOfInput] = field(default_factory=deque)
    _task: asyncio.Task[None] | None = None

    @property
    def key(self) -> TurnKey:
        """Turn ids are unique per session; tenants may share session ids."""
        return TurnKey(self.session_key.tenant, self.state.turn_id)

    def start(self, post: deque[tuple[TurnKey, Report | TurnEnded]]) -> None:
        """Start the graph; reports and the end go to ``post`` tagged with the turn's key."""
        turn_id = self.state.turn_id
        key = self.key

        def report(r: Report) -> None:
            post.append((key, r))

        self.run = self.graph.graph.start_turn(
            session_id=self.session_key.session,
            turn_id=turn_id,
            correlation_id=self.stamp.correlation_id,
            trace_id=self.stamp.trace_id,
            reporter=report,
            turn_timeout_s=self.plan.turn_timeout_ms / 1000.0,
        )
        # No task waits for the graph: its last task posts the end (a cancelled turn's end
        # arrives after the engine closed it and is dropped there like any late report).
        self.run.on_done(lambda outcome: post.append((key, TurnEnded(outcome))))

    def feed(self, item: Item) -> int:
        """Queue one input item; returns how many queued items were shed to stay bounded."""
        if self.input_closed:
            return 0
        shed = 0
        # Low-latency: never block the data lane; the oldest queued input goes first.
        while len(self._pending) >= self.graph.input_capacity * 4:
            self._pending.popleft()
            shed += 1
        self._pending.append(item)
        self._push()
        self.shed_inputs += shed
        return shed

    def end_input(self) -> None:
        if not self.input_closed:
            self.input_closed = True
            self._pending.append(EndOfInput("end_of_utterance"))
            self._push()

    def _push(self) -> None:
        """Hand queued input to the graph now while its input edge has room; the rest waits
        in ``_pending`` (bounded above) for a feeder task that awaits the room."""
        run = self.run
        assert run is not None
        if self._task is None or self._task.done():
            while self._pending and run.offer(self._pending[0]):
                self._pending.popleft()
            if self._pending:
                self._task = asyncio.create_task(self._drive(), name=f"feed:{self.state.turn_id}")

    def cancel(self) -> None:
        """Cancel the turn scope: every node task and provider call stops."""
        self.input_closed = True
        self._pending.clear()
        if self.run is not None:
            self.run.cancel()
        if self._task is not None:
            self._task.cancel()

    def cancel_node(self, node_id: str) -> bool:
        if self.run is None or node_id not in self.graph.graph.nodes:
            return False
        self.run.cancel_node(node_id)
        return True

    async def _drive(self) -> None:
        """Feed the backlog that did not fit the input edge, waiting for room; ends when empty."""
        run = self.run
        assert run is not None
        while self._pending:
            item = self._pending.popleft()
            if isinstance(item, EndOfInput):
                await run.end_input()
            else:
                await run.feed(item)
