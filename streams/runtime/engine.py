"""The turn engine: sessions, admission, turns, cancel, node reports → log events.

Kafka-free: it takes decoded ingress events and graph reports and writes
through an :class:`EventWriter`; :mod:`streams.runtime.processor` owns the
consumers, the transaction and the rebalance handling around it. One engine
instance runs on one asyncio loop; no locking is needed.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from uuid import uuid4

from pipelines.models.resolved import PipelineBundle
from streams.abi import events as ev
from streams.nodes import AudioFrame, Report, TranscriptText
from streams.observability.observer import NO_OBSERVER, Observer
from streams.runtime.cancelling import apply_cancel
from streams.runtime.graphs import GraphCache
from streams.runtime.held import HeldUtterances, overflow_rule
from streams.runtime.lifecycle import Marker, TurnState, next_markers_to_close
from streams.runtime.pinning import PinnedBundleError, PinnedBundles
from streams.runtime.planning import next_turn_id
from streams.runtime.reports import OutputRecorder
from streams.runtime.sessions import SEQ_WINDOW, SessionKey, SessionState
from streams.runtime.stats import EngineStats
from streams.runtime.turns import ActiveTurn, TurnEnded, TurnKey, close_left_open
from streams.runtime.writer import EventWriter, TurnStamp

__all__ = ["EngineStats", "TurnEngine"]


class TurnEngine:
    """Applies ingress events and node reports to session state, writing every event."""

    def __init__(
        self,
        *,
        writer: EventWriter,
        bundle: PipelineBundle,
        graphs: GraphCache,
        processor_id: str,
        prefix: str,
        session_gate: object = None,
        load_bundle: Callable[[str], PipelineBundle] | None = None,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self.writer = writer
        self.observer = observer
        self.bundle = bundle
        self.graphs = graphs
        self.processor_id = processor_id
        self.prefix = prefix
        # Restored sessions keep the bundle they were admitted under (pinning.py).
        self.bundles = PinnedBundles(
            default=bundle,
            load=load_bundle or _no_bundle_store,
            processor_id=processor_id,
            prefix=prefix,
        )
        self.sessions: dict[SessionKey, SessionState] = {}
        self.turns: dict[TurnKey, ActiveTurn] = {}
        self._open_by_tenant: Counter[str] = Counter()  # admission: open turns per tenant
        self.reports: deque[tuple[TurnKey, Report | TurnEnded]] = deque()
        # Utterances that arrived while the previous turn responds (bounded; shed or refused).
        self.held = HeldUtterances(rule=overflow_rule(bundle))
        self.dirty: set[SessionKey] = set()
        self.draining = False
        self.stats = EngineStats()
        admission = bundle.resolved_spec.admission
        self.max_turns_per_tenant = admission.max_concurrent_turns_per_tenant.value
        self._session_gate = session_gate
        self.recorder = OutputRecorder(writer=writer, stats=self.stats)

    # -- the processor's commands (it reads and changes engine state only through these) --
    def session(self, key: SessionKey) -> SessionState | None:
        return self.sessions.get(key)

    def mark_dirty(self, key: SessionKey) -> None:
        """The session's snapshot must be written with the next commit."""
        self.dirty.add(key)

    def start_draining(self) -> None:
        """Admit no new session; held utterances stay held for the next owner."""
        self.draining = True

    def take_dirty(self) -> list[tuple[SessionState, tuple[ev.Envelope, ...]]]:
        """Sessions whose snapshot is due, each with the utterances it holds; clears the set."""
        keys = [k for k in sorted(self.dirty) if k in self.sessions]
        due = [(self.sessions[k], tuple(self.held.items(k))) for k in keys]
        self.dirty.clear()
        return due

    def prewarm(self) -> None:
        """Build the bundle's graphs now (models load here), not inside the first turn."""
        plan = self.bundles.default.warmup_plan()
        for text_input in (False, True):
            self.graphs.for_plan(plan, text_input=text_input)

    # -- ingress ------------------------------------------------------------
    def apply(self, event: ev.Envelope, *, partition: int) -> str | None:
        """Apply one decoded ingress event. Returns a DLQ reason when it cannot be applied."""
        self.stats.events_in += 1
        p = event.payload
        session = self.sessions.get(SessionKey.of(event))
        if isinstance(p, ev.SessionOpen):
            return self._open_session(event, partition)
        # Data that overtook its SESSION_OPEN (the lanes are separate topics) opens the session;
        # for a closed one only when sent after the close: the session was opened again.
        data = isinstance(p, ev.AudioChunk | ev.Transcript)
        reopened = session is not None and data and session.sent_after_close(event.ts)
        if session is None or reopened:
            if not data:  # only the caller's words open a session implicitly
                return f"{event.event_type.value} for unknown session {event.session_id}"
            reason = "implicit session reopen" if reopened else "implicit session open"
            session = self._admit(event, partition, reason=reason)
            if session is None:
                return None
        if session.closed:
            return f"session {event.session_id} is closed or was rejected"
        if event.lane is ev.Lane.DATA and session.sent_before_reopen(event.ts):
            return f"sent before session {event.session_id} last closed (the previous call's)"
        if session.partition != partition:
            return f"session {event.session_id} lives on partition {session.partition}, not {partition}"
        lane = event.lane.value
        last = session.last_seq_by_lane.get(lane, -1)
        if event.seq <= last:
            return f"out-of-order seq {event.seq} on {lane} lane (last applied {last})"
        if event.seq > last + SEQ_WINDOW:
            return f"seq {event.seq} jumps more than {SEQ_WINDOW} past the last applied ({last})"
        session.last_seq_by_lane[lane] = event.seq
        self.dirty.add(session.key)
        if isinstance(p, ev.Cancel):
            return self._cancel(session, event, p)
        if isinstance(p, ev.SessionClose):
            self._close_session(session, event)
            return None
        if isinstance(p, ev.Telemetry):
            self._record(session, event)
            return None
        if isinstance(p, ev.AudioChunk | ev.Transcript | ev.EndOfUtterance):
            return self._data(session, event)
        return f"{event.event_type.value} is not an ingress event"

    def shed(self, key: SessionKey, drop: ev.Shed, *, in_turn: bool = True) -> bool:
        """Log ``drop`` for records of the session dropped (in its open turn if ``in_turn``);
        False: no such session here."""
        session = self.sessions.get(key)
        if session is None or session.closed:
            return False
        active = self._active(session) if in_turn else None
        self.writer.log(session, drop, turn=active.stamp if active else None)
        self.dirty.add(key)
        self.stats.shed += drop.shed_count
        return True

    def log_sheds(self, key: SessionKey | None = None) -> int:
        """Log one SHED per session for held utterances dropped since the last call.

        Called before every commit, so a drop and its SHED event land in the same
        transaction as the dropped record's offset."""
        rule = self.held.rule
        logged = 0
        if rule is None:
            return 0
        for sid, count in self.held.take_sheds(key):
            logged += count
            drop = ev.Shed(
                reason="held utterance buffer full while the previous turn responds",
                rule=rule.rule,
                defaulting_source=rule.defaulting_source,
                lane=ev.Lane.DATA,
                shed_count=count,
            )
            # The dropped utterances were never part of the open turn.
            self.shed(sid, drop, in_turn=False)
        return logged

    # -- sessions -----------------------------------------------------------
    def _open_session(self, event: ev.Envelope, partition: int) -> str | None:
        existing = self.sessions.get(SessionKey.of(event))
        if existing is not None and not existing.closed:
            last = existing.last_seq_by_lane.get(event.lane.value, -1)
            if event.seq <= last:
                return f"duplicate SESSION_OPEN for open session {event.session_id}"
            # The session's data overtook its open (lanes are separate topics): record it late.
            existing.last_seq_by_lane[event.lane.value] = event.seq
            self._record(existing, event)
            return None
        session = self._admit(event, partition, reason=None)
        if session is not None:
            session.last_seq_by_lane[event.lane.value] = event.seq
        return None

    def _admit(
        self, event: ev.Envelope, partition: int, *, reason: str | None
    ) -> SessionState | None:
        session = SessionState(
            session_id=event.session_id,
            tenant_id=event.tenant_id,
            partition=partition,
            bundle_id=self.bundle.bundle_id,
        )
        self.bundles.pin(session)
        before = self.sessions.get(session.key)
        if before is not None:
            session.continue_after(before)
        self.sessions[session.key] = session
        self.dirty.add(session.key)
        corr = event.correlation.correlation_id
        # Causation must resolve to an earlier record: only a SESSION_OPEN is recorded before
        # the admission; data that overtook its open is recorded later, inside the turn.
        cause: str | None = None
        if isinstance(event.payload, ev.SessionOpen):
            cause = self.writer.log(
                session, event.payload, event_id=event.event_id, ts=event.ts, correlation_id=corr
            ).event_id
        refusal = self._refusal()
        if refusal is not None:
            self.writer.log(
                session, ev.Reject(reason=refusal), correlation_id=corr, causation_id=cause
            )
            session.closed = True
            self.stats.sessions_rejected += 1
            return None
        self.writer.log(
            session,
            ev.Admit(reason=reason),
            correlation_id=corr,
            causation_id=cause,
            bundle_id=session.bundle_id,
        )
        self.stats.sessions_admitted += 1
        return session

    def _refusal(self) -> str | None:
        if self.draining:
            return "draining: processor is shutting down"
        if callable(self._session_gate):
            problem = self._session_gate(self.bundle)
            if problem:
                return f"version skew: {problem}"
        return None

    def _close_session(self, session: SessionState, event: ev.Envelope) -> None:
        # Take the held utterances first: aborting the active turn must not start them.
        self.log_sheds(session.key)
        held = self.held.release(session.key)
        active = self._active(session)
        if active is not None:
            self._abort(session, active, reason="session closed")
        self._record(session, event)
        session.close(at=event.ts)
        for item in held:
            self.writer.dead_letter_event(
                item,
                reason="session closed before this utterance was processed",
                partition=session.partition,
            )

    def _record(self, session: SessionState, event: ev.Envelope) -> None:
        """Log an ingress event as the producer sent it (outside any turn)."""
        corr = event.correlation.correlation_id
        self.writer.log(
            session, event.payload, event_id=event.event_id, ts=event.ts, correlation_id=corr
        )

    def _drain(self, session: SessionState, event: ev.Envelope, *, why: str) -> None:
        """End a session that cannot go on here (its pinned bundle cannot be loaded, and a
        silent switch is never an option), with the reason in the log."""
        close = ev.SessionClose(reason=f"drained: {why}"[:500])
        drained = replace(event, event_id=str(uuid4()), payload=close, event_type=close.EVENT_TYPE)
        self._close_session(session, drained)

    # -- data & turns -------------------------------------------------------
    def _active(self, session: SessionState) -> ActiveTurn | None:
        if session.turn is None or not session.turn.is_open:
            return None
        return self.turns.get(TurnKey(session.tenant_id, session.turn.turn_id))

    def _data(self, session: SessionState, event: ev.Envelope) -> str | None:
        active = self._active(session)
        if active is not None and active.input_closed:
            return self.held.hold(session.key, event)
        p = event.payload
        if active is None:
            if isinstance(p, ev.EndOfUtterance):
                return "END_OF_UTTERANCE without an open turn (cancelled or never started)"
            text = isinstance(p, ev.Transcript)
            if self._open_by_tenant[session.tenant_id] >= self.max_turns_per_tenant:
                self.writer.log(
                    session,
                    ev.Defer(reason="tenant turn limit reached", retry_after_ms=500),
                    correlation_id=event.correlation.correlation_id,
                )
                self.stats.deferred += 1
                # Deferred, not processed: the input goes to the DLQ intact for a retry.
                return "deferred: tenant turn limit reached (retry after 500 ms)"
            try:
                active = self._open_turn(session, event, text_input=text)
            except PinnedBundleError as exc:
                self._drain(session, event, why=str(exc))
                return str(exc)
        self._record_input(session, active, event)
        if isinstance(p, ev.AudioChunk):
            if not active.graph.entry_takes_audio:
                return None  # a text-entry turn ignores audio (recorded above)
            self._feed(
                session, active, AudioFrame(pcm=p.audio, sample_rate=p.sample_rate, seq=p.seq)
            )
        elif isinstance(p, ev.Transcript):
            final = p.kind is ev.TranscriptKind.FINAL
            if not active.graph.entry_takes_audio:
                self._feed(
                    session,
                    active,
                    TranscriptText(text=p.text, final=final, confidence=p.confidence or 1.0),
                )
            if final:
                active.end_input()
        else:
            active.end_input()
        return None

    def _feed(
        self, session: SessionState, active: ActiveTurn, item: AudioFrame | TranscriptText
    ) -> None:
        dropped = active.feed(item)
        if dropped:
            edge = next((e for e in active.plan.edges if e.source == active.graph.entry), None)
            drop = ev.Shed(
                reason="turn input full",
                rule=f"edge overflow {edge.overflow.value if edge else 'drop_oldest'}",
                defaulting_source=edge.overflow.source if edge else "runtime default",
                lane=ev.Lane.DATA,
                shed_count=dropped,
            )
            self.shed(session.key, drop)

    def _record_input(self, session: SessionState, active: ActiveTurn, event: ev.Envelope) -> None:
        recorded = self.writer.log(
            session, event.payload, turn=active.stamp, event_id=event.event_id, ts=event.ts
        )
        active.last_input_event = recorded.event_id

    def _forget_turn(self, key: TurnKey) -> None:
        if self.turns.pop(key, None) is not None:
            self._open_by_tenant[key.tenant] -= 1

    def _open_turn(
        self, session: SessionState, event: ev.Envelope, *, text_input: bool
    ) -> ActiveTurn:
        epoch = self.writer.leases.epoch(session.partition)
        turn_id = next_turn_id(session)
        trigger = "final_transcript" if text_input else "end_of_utterance"
        planner = self.bundles.planner_for(session)
        plan = planner.plan(session, event, turn_id=turn_id, trigger=trigger, epoch=epoch)
        stamp = TurnStamp(
            turn_id=turn_id,
            plan_hash=plan.plan_hash,
            bundle_id=planner.bundle.bundle_id,
            correlation_id=event.correlation.correlation_id,
            trace_id=self.observer.trace_id(
                session.tenant_id, session.session_id, event.correlation.trace_id
            ),
        )
        state = TurnState(
            turn_id=turn_id,
            session_id=session.session_id,
            plan_hash=plan.plan_hash,
            lease_epoch=epoch,
        )
        # A session cancel ends the work in flight, not the session.
        session.fence.turn_opened()
        opened = self.writer.log(
            session,
            ev.TurnOpen(
                plan_hash=plan.plan_hash,
                plan_json=plan.plan_json,
            ),
            turn=stamp,  # no causation: the triggering input is recorded right after TURN_ACTIVE
        )
        state = state.advance(Marker.OPEN)
        self.writer.log(
            session, ev.TurnActive(trigger=trigger), turn=stamp, causation_id=opened.event_id
        )
        state = state.advance(Marker.ACTIVE)
        active = ActiveTurn(
            state=state,
            stamp=stamp,
            plan=plan,
            graph=self.graphs.for_plan(plan, text_input=text_input),
            session_key=session.key,
            opened_ns=time.monotonic_ns(),
        )
        session.turn = state
        session.turn_correlation = stamp.correlation_id
        self.turns[active.key] = active
        self._open_by_tenant[session.tenant_id] += 1
        active.start(self.reports)
        self.stats.turns_opened += 1
        return active

    # -- cancel -------------------------------------------------------------
    def _cancel(self, session: SessionState, event: ev.Envelope, cancel: ev.Cancel) -> str | None:
        started = time.perf_counter()
        refused = apply_cancel(
            self.writer,
            session,
            self._active(session),
            event,
            cancel,
            abort=lambda active, why: self._abort(
                session, active, reason=why, causation=event.event_id
            ),
        )
        if refused is not None:
            return refused
        self.stats.cancels += 1
        self.stats.fence_latency_ms.append((time.perf_counter() - started) * 1000.0)
        return None

    # -- endings ------------------------------------------------------------
    def _abort(
        self,
        session: SessionState,
        active: ActiveTurn,
        *,
        reason: str,
        causation: str | None = None,
    ) -> None:
        active.cancel()
        self._close_turn(session, active, committed=False, reason=reason, causation=causation)

    def _close_turn(
        self,
        session: SessionState,
        active: ActiveTurn,
        *,
        committed: bool,
        reason: str = "",
        causation: str | None = None,
    ) -> None:
        state = active.state
        end: ev.Envelope | None = None
        if committed:
            end = self.writer.log(
                session,
                ev.TurnCommit(outputs=active.accepted),
                turn=active.stamp,
                causation_id=causation,
            )
            state = state.advance(Marker.COMMIT)
            self.stats.turns_committed += 1
        else:
            for marker in next_markers_to_close(state):
                if marker is Marker.ACTIVE:
                    self.writer.log(
                        session,
                        ev.TurnActive(trigger="abort"),
                        turn=active.stamp,
                        causation_id=causation,
                    )
                elif marker is Marker.ABORT:
                    end = self.writer.log(
                        session,
                        ev.TurnAbort(reason=reason),
                        turn=active.stamp,
                        causation_id=causation,
                    )
                if marker is not Marker.CLOSE:
                    state = state.advance(marker, reason=reason)
            self.stats.turns_aborted += 1
        outcome = ev.TurnOutcome.COMMITTED if committed else ev.TurnOutcome.ABORTED
        self.writer.log(
            session,
            ev.TurnClose(outcome=outcome),
            turn=active.stamp,
            causation_id=end.event_id if end else causation,
        )
        active.state = state.advance(Marker.CLOSE)
        session.turn = active.state
        session.turns_done += 1
        session.fence.forget_turn(state.turn_id)
        self._forget_turn(active.key)
        self.dirty.add(session.key)
        self._start_pending(session)

    def _start_pending(self, session: SessionState) -> None:
        """Replay the utterance that arrived while the previous turn was responding.

        While draining, held utterances stay held: the session snapshot carries them
        to the partition's next owner.
        """
        if self.draining:
            return
        while True:
            active = self._active(session)
            if active is not None and active.input_closed:
                return
            event = self.held.next(session.key)
            if event is None:
                return
            reason = self._data(session, event)
            if reason is not None:
                self.writer.dead_letter_event(event, reason=reason, partition=session.partition)

    # -- reports ------------------------------------------------------------
    def drain_reports(self, *, limit: int = 512) -> int:
        """Turn node reports into events; reports of closed turns are dropped (fenced)."""
        handled = 0
        while self.reports and handled < limit:
            key, report = self.reports.popleft()
            handled += 1
            active = self.turns.get(key)
            if active is None or active.state.is_terminal:
                continue
            session = self.sessions[active.session_key]
            # Every logged event advances the session's seq: its snapshot must follow.
            self.dirty.add(session.key)
            if isinstance(report, TurnEnded):
                self._ended(session, active, report)
            else:
                self.recorder.record(session, active, report)
        return handled

    def _ended(self, session: SessionState, active: ActiveTurn, ended: TurnEnded) -> None:
        outcome = ended.outcome
        if outcome.status == "completed":
            self._close_turn(
                session,
                active,
                committed=True,
                causation=active.last_event_by_node.get(active.graph.sink),
            )
        else:
            reason = (
                f"node {outcome.failed_node} failed: {outcome.error}"
                if outcome.status == "failed"
                else "cancelled"
            )
            self._close_turn(session, active, committed=False, reason=reason[:300])

    # -- housekeeping --------------------------------------------------------
    def expire_turns(self) -> None:
        """Abort turns that ran past their plan's turn timeout."""
        now = time.monotonic_ns()
        for active in list(self.turns.values()):
            if (
                now - active.opened_ns
            ) / 1e6 > active.plan.turn_timeout_ms and not active.state.is_terminal:
                self._abort(self.sessions[active.session_key], active, reason="turn timeout")

    def fail_session(self, key: SessionKey, *, reason: str) -> None:
        """Applying one of the session's records failed unexpectedly: abort its open turn
        (the caller dead-letters the record; every other session goes on)."""
        session = self.sessions.get(key)
        active = self._active(session) if session is not None else None
        if session is not None and active is not None and not active.state.is_terminal:
            self._abort(session, active, reason=reason[:300])
            self.dirty.add(key)

    def abort_all(self, *, reason: str, partitions: set[int] | None = None) -> None:
        for active in list(self.turns.values()):
            session = self.sessions[active.session_key]
            if partitions is None or session.partition in partitions:
                self._abort(session, active, reason=reason)

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop state of revoked partitions without writing (the new owner closes their turns)."""
        for key, active in list(self.turns.items()):
            if self.sessions[active.session_key].partition in partitions:
                active.cancel()
                self._forget_turn(key)
        for sk in [k for k, st in self.sessions.items() if st.partition in partitions]:
            self.sessions.pop(sk, None)
            self.held.forget(sk)
            self.writer.forget(sk)
            self.dirty.discard(sk)

    def restore(self, session: SessionState, *, pending: Iterable[ev.Envelope] = ()) -> None:
        """Adopt a session restored from the changelog; close a turn left open by the previous
        owner, then start the utterances it held (``pending``, from the snapshot)."""
        self.sessions[session.key] = session
        if close_left_open(self.writer, session):
            self.stats.turns_aborted += 1
        self.dirty.add(session.key)
        self.held.restore(session.key, pending)
        self._start_pending(session)


def _no_bundle_store(ref: str) -> PipelineBundle:
    raise LookupError("this engine has no bundle store to load other bundles from")
