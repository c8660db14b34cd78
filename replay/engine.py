"""The replay engine: stream the log once, rebuild turns, run every check.

Checks that depend on log order (epoch fencing per partition, cancel fencing,
causation, per-session seq) run as records stream past; checks that need the
whole turn run when the turn closes. Results are emitted per session when it
closes (late records of a closed turn still land on that turn's result) and
for whatever is still open when the log ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from replay.checks import (
    MARKERS,
    RECORDED_INPUTS,
    PlanChecker,
    check_correlation_ids,
    check_evidence,
    check_lifecycle,
)
from replay.evidence import EvidenceRules, ReplayPolicy
from replay.model import CHECK_ORDER, Divergence, DivergenceKind, Position, TurnResult
from replay.resim import Resimulator
from streams.abi.events import (
    Cancel,
    CancelScope,
    Envelope,
    EventType,
    LeaseGranted,
    NodeOutput,
    OutputAccepted,
    PlaybackStarted,
    TurnClose,
)
from streams.runtime.fencing import CancelFence, Scope

__all__ = ["Engine"]

_ADMISSION = frozenset({EventType.ADMIT, EventType.REJECT, EventType.DEFER})
_EGRESS = frozenset({EventType.OUTPUT_ACCEPTED, EventType.PLAYBACK_STARTED})
# Records the processor copies with the client's own timestamp; every other record is
# stamped by the processor's clock, so within a session those must not go back in time.
_CLIENT_TIMED = RECORDED_INPUTS | {EventType.SESSION_OPEN, EventType.SESSION_CLOSE,
                                   EventType.TELEMETRY}
_MS = timedelta(milliseconds=1)


@dataclass(slots=True)
class _Turn:
    turn_id: str
    events: list[tuple[Position, Envelope]] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    outputs: dict[str, str | None] = field(default_factory=dict)  # NODE_OUTPUT id -> node
    output_keys: set[tuple[str | None, int]] = field(default_factory=set)  # (node, output_seq)
    accepted: set[str] = field(default_factory=set)  # outputs with an OUTPUT_ACCEPTED
    count: int = 0
    closed: bool = False
    outcome: str | None = None


@dataclass(slots=True)
class _Session:
    session_id: str
    tenant_id: str
    seen: set[str] = field(default_factory=set)
    turns: dict[str, _Turn] = field(default_factory=dict)
    loose: list[Divergence] = field(default_factory=list)
    loose_events: int = 0
    next_seq: int | None = None
    rejected: bool = False
    fence: CancelFence = field(default_factory=CancelFence)
    admitted: tuple[str, Position] | None = None  # ADMIT's bundle_id and where
    pinned: tuple[str, str, str] | None = None  # first judged turn: bundle_id, digest, turn_id
    clock: datetime | None = None  # latest processor timestamp so far


@dataclass(slots=True)
class _Partition:
    epoch: int | None = None
    grant: Position | None = None
    holders: dict[int, str] = field(default_factory=dict)


class Engine:
    """One pass over one log. Not thread-safe; build a new one per replay."""

    def __init__(self, *, rules: EvidenceRules, plans: PlanChecker, policy: ReplayPolicy,
                 resim: Resimulator | None = None, check_sequence: bool = True) -> None:
        self.rules, self.plans, self.resim, self.policy = rules, plans, resim, policy
        self.check_sequence = check_sequence
        self._timing = policy.runs(DivergenceKind.TIMING)
        self.events = 0
        # Keyed (tenant, session): tenants may use the same session id and never meet.
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._partitions: dict[int, _Partition] = {}

    def run(self, records: Iterable[tuple[Position, Envelope]]) -> Iterator[TurnResult]:
        for pos, env in records:
            self.events += 1
            done = self._feed(pos, env)
            if done is not None:
                yield from self._finish(done)
        for session in list(self._sessions.values()):
            yield from self._finish(session)
        self._sessions.clear()

    # -- streaming checks ------------------------------------------------------------------
    def _feed(self, pos: Position, env: Envelope) -> _Session | None:
        et = env.event_type
        key = (env.tenant_id, env.session_id)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session(env.session_id, env.tenant_id)
        part = self._partitions.get(pos.partition)
        if part is None:
            part = self._partitions[pos.partition] = _Partition()
        turn_id = env.turn_id
        turn = None
        if turn_id is not None:
            turn = session.turns.get(turn_id)
            if turn is None:
                turn = session.turns[turn_id] = _Turn(turn_id)
            turn.count += 1
        else:
            session.loose_events += 1
        sink = turn.divergences if turn is not None else session.loose

        self._epoch(pos, env, part, sink)
        # Lease records use a per-partition pseudo-session whose seq LOG_CONTRACT leaves open.
        if self.check_sequence and et is not EventType.LEASE_GRANTED:
            want = session.next_seq
            if want is not None and env.seq != want:
                sink.append(self._div(DivergenceKind.SEQUENCE, pos, env, expected=f"seq {want}",
                                      actual=f"seq {env.seq}",
                                      message="per-session log seq has a gap or goes back"))
            session.next_seq = env.seq + 1
        self._causation_and_clock(pos, env, session, sink)

        if turn is None:
            return self._session_event(pos, env, session)
        if et in _ADMISSION:
            sink.append(self._div(DivergenceKind.LIFECYCLE, pos, env, expected="no turn_id",
                                  actual=str(turn_id), message=f"{et.value} carries a turn_id"))
        elif session.rejected and turn.count == 1:
            sink.append(self._div(DivergenceKind.LIFECYCLE, pos, env, expected="no turn events",
                                  actual=et.value, message="turn in a rejected session"))
        if turn.closed:
            sink.append(self._div(DivergenceKind.LIFECYCLE, pos, env, expected="nothing after CLOSE",
                                  actual=et.value, message=f"{et.value} after TURN_CLOSE"))
            return None
        turn.events.append((pos, env))
        if et is EventType.TURN_OPEN:
            session.fence.turn_opened()
        elif et is EventType.NODE_OUTPUT:
            turn.outputs[env.event_id] = env.node_id
            self._once(pos, env, turn)
        elif et is EventType.CANCEL:
            self._cancel(env, session)
        elif et in _EGRESS:
            self._egress(pos, env, session, turn)
        elif et is EventType.TURN_CLOSE:
            assert isinstance(env.payload, TurnClose)
            turn.outcome = env.payload.outcome.value
            self._close_turn(session, turn, end_of_log=False)
        return None

    def _session_event(self, pos: Position, env: Envelope, session: _Session) -> _Session | None:
        et = env.event_type
        if et is EventType.REJECT:
            session.rejected = True
        elif et is EventType.ADMIT and env.bundle_id:
            if session.admitted is None:
                session.admitted = (env.bundle_id, pos)
            elif session.admitted[0] != env.bundle_id:
                first, at = session.admitted
                session.loose.append(self._div(
                    DivergenceKind.BUNDLE_PINNING, pos, env, expected=first,
                    actual=env.bundle_id, message=f"ADMIT again on {env.bundle_id}; the session "
                    f"was admitted on {first} at {at}"))
        elif et is EventType.CANCEL:
            self._cancel(env, session)
        elif et in MARKERS:
            session.loose.append(self._div(DivergenceKind.LIFECYCLE, pos, env, expected="a turn_id",
                                           actual="none", message=f"{et.value} without turn_id"))
        elif et is EventType.SESSION_CLOSE:
            return session
        return None

    def _epoch(self, pos: Position, env: Envelope, part: _Partition, sink: list[Divergence]) -> None:
        """Epoch fencing: every record carries the partition's current lease epoch."""
        if env.event_type is EventType.LEASE_GRANTED:
            self._grant(pos, env, part, sink)
        elif env.lease_epoch == 0:
            sink.append(self._div(DivergenceKind.EPOCH, pos, env, expected="a granted epoch (>= 1)",
                                  actual="epoch 0", message="written without a lease"))
        elif part.epoch is not None and env.lease_epoch != part.epoch:
            stale = env.lease_epoch < part.epoch
            sink.append(self._div(DivergenceKind.EPOCH, pos, env, expected=f"epoch {part.epoch} "
                                  f"(LEASE_GRANTED at {part.grant})", actual=f"epoch {env.lease_epoch}",
                                  message="zombie write: epoch older than the partition's lease"
                                  if stale else "epoch ahead of any LEASE_GRANTED"))

    def _grant(self, pos: Position, env: Envelope, part: _Partition, sink: list[Divergence]) -> None:
        grant = env.payload
        assert isinstance(grant, LeaseGranted)
        holder = part.holders.get(grant.epoch)
        if holder is not None and holder != grant.holder:
            sink.append(self._div(DivergenceKind.EPOCH, pos, env, expected=f"holder {holder}",
                                  actual=f"holder {grant.holder}",
                                  message=f"two holders of epoch {grant.epoch}"))
        elif part.epoch is not None and grant.epoch <= part.epoch and holder is None:
            sink.append(self._div(DivergenceKind.EPOCH, pos, env, expected=f"epoch > {part.epoch}",
                                  actual=f"epoch {grant.epoch}",
                                  message="lease epochs must strictly increase"))
        if env.lease_epoch != grant.epoch:
            sink.append(self._div(DivergenceKind.EPOCH, pos, env, expected=f"epoch {grant.epoch}",
                                  actual=f"epoch {env.lease_epoch}",
                                  message="LEASE_GRANTED written at another epoch than it grants"))
        part.holders.setdefault(grant.epoch, grant.holder)
        if part.epoch is None or grant.epoch > part.epoch:
            part.epoch, part.grant = grant.epoch, pos

    def _causation_and_clock(self, pos: Position, env: Envelope, session: _Session,
                             sink: list[Divergence]) -> None:
        cause = env.correlation.causation_id
        if cause is not None and cause not in session.seen:
            sink.append(self._div(DivergenceKind.CORRELATION, pos, env, expected="an earlier event_id",
                                  actual=cause, message="causation_id does not resolve to an earlier "
                                  "event of the session"))
        session.seen.add(env.event_id)
        if not self._timing or env.event_type in _CLIENT_TIMED:
            return
        last = session.clock
        if last is None or env.ts >= last:
            session.clock = env.ts
            return
        skew = (last - env.ts) / _MS
        sink.append(Divergence(
            kind=DivergenceKind.TIMING, session_id=env.session_id, turn_id=env.turn_id,
            position=pos, node_id=env.node_id, expected=f"ts >= {last.isoformat()}",
            actual=env.ts.isoformat(), skew_ms=skew,
            message=f"{env.event_type.value}: stamped {skew:g} ms before the session's "
                    "previous processor record (clock skew)"))

    @staticmethod
    def _cancel(env: Envelope, session: _Session) -> None:
        cancel = env.payload
        assert isinstance(cancel, Cancel)
        if cancel.scope is CancelScope.SESSION:
            session.fence.cancel(Scope.SESSION)
        elif cancel.scope is CancelScope.TURN:
            target = cancel.target or env.turn_id
            if target is not None:  # a late barge-in (no turn in flight) fences nothing
                session.fence.cancel(Scope.TURN, turn_id=target)
        elif env.turn_id is not None:
            session.fence.cancel(Scope.NODE, turn_id=env.turn_id, node_id=cancel.target)

    def _once(self, pos: Position, env: Envelope, turn: _Turn) -> None:
        """A node's output is recorded once per (node, output_seq): a second copy is a
        duplicate write (a retried transaction, a zombie)."""
        output = env.payload
        assert isinstance(output, NodeOutput)
        key = (env.node_id, output.output_seq)
        if key in turn.output_keys:
            turn.divergences.append(self._div(
                DivergenceKind.DUPLICATE, pos, env, expected="one NODE_OUTPUT per output_seq",
                actual=f"output_seq {output.output_seq} again", message="duplicate output"))
        turn.output_keys.add(key)

    def _egress(self, pos: Position, env: Envelope, session: _Session, turn: _Turn) -> None:
        payload = env.payload
        assert isinstance(payload, OutputAccepted | PlaybackStarted)
        target = payload.output_event_id
        if isinstance(payload, OutputAccepted):
            if target in turn.accepted:
                turn.divergences.append(self._div(
                    DivergenceKind.DUPLICATE, pos, env, expected="one OUTPUT_ACCEPTED per output",
                    actual=target, message="output accepted twice"))
            turn.accepted.add(target)
        if target not in turn.outputs:
            turn.divergences.append(self._div(
                DivergenceKind.CORRELATION, pos, env, expected="a NODE_OUTPUT of this turn",
                actual=target, message=f"{env.event_type.value} names an output not in the turn"))
        node = env.node_id or turn.outputs.get(target)
        if session.fence.blocks(turn_id=turn.turn_id, node_id=node):
            turn.divergences.append(self._div(
                DivergenceKind.CANCEL, pos, env, expected="no egress after CANCEL",
                actual=f"{env.event_type.value} of {target}", node_id=node,
                message=f"{env.event_type.value} after a CANCEL of its scope"))

    # -- per-turn checks ---------------------------------------------------------------------
    def _close_turn(self, session: _Session, turn: _Turn, *, end_of_log: bool) -> None:
        sid, tid, events = session.session_id, turn.turn_id, turn.events
        found = check_evidence(self.rules, sid, tid, events)
        found += check_lifecycle(sid, tid, events, require_closed=end_of_log)
        plan_divs, plan, recorded = self.plans.check(sid, tid, events)
        found += plan_divs
        if recorded is not None:
            found += _check_pinning(session, turn, recorded.bundle_id, recorded.bundle_digest)
        found += check_correlation_ids(sid, tid, events)
        if self.resim is not None and plan is not None:
            found += self.resim.check(sid, tid, plan, events, complete=turn.outcome == "COMMITTED")
        turn.divergences.extend(found)
        turn.closed = True
        turn.events = []  # the turn is judged; keep memory flat on long logs
        session.fence.forget_turn(tid)

    def _finish(self, session: _Session) -> Iterator[TurnResult]:
        self._sessions.pop((session.tenant_id, session.session_id), None)
        for turn in session.turns.values():
            if not turn.closed:
                self._close_turn(session, turn, end_of_log=True)
            failing, tolerated = self.policy.judge(turn.divergences)
            yield TurnResult(session_id=session.session_id, turn_id=turn.turn_id,
                             tenant_id=session.tenant_id, events=turn.count, outcome=turn.outcome,
                             divergences=_ordered(failing), tolerated=_ordered(tolerated))
        failing, tolerated = self.policy.judge(session.loose)
        if failing or tolerated:
            yield TurnResult(session_id=session.session_id, turn_id=None,
                             tenant_id=session.tenant_id, events=session.loose_events,
                             outcome=None, divergences=_ordered(failing),
                             tolerated=_ordered(tolerated))

    @staticmethod
    def _div(kind: DivergenceKind, pos: Position, env: Envelope, *, expected: str, actual: str,
             message: str, node_id: str | None = None) -> Divergence:
        return Divergence(kind=kind, session_id=env.session_id, turn_id=env.turn_id, position=pos,
                          node_id=node_id if node_id is not None else env.node_id,
                          expected=expected, actual=actual, message=f"{env.event_type.value}: "
                          f"{message}" if not message.startswith(env.event_type.value) else message)


def _check_pinning(session: _Session, turn: _Turn, bundle_id: str,
                   digest: str) -> list[Divergence]:
    """A session runs every turn on the bundle it was admitted with (pinned for life)."""
    opened = next(((p, e) for p, e in turn.events if e.event_type is EventType.TURN_OPEN), None)
    pos = opened[0] if opened else None
    out: list[Divergence] = []

    def div(expected: str, message: str) -> None:
        out.append(Divergence(kind=DivergenceKind.BUNDLE_PINNING, session_id=session.session_id,
                              turn_id=turn.turn_id, position=pos, node_id=None, expected=expected,
                              actual=f"{bundle_id} ({digest})", message=message))

    stray = next(((p, e) for p, e in turn.events if e.bundle_id and e.bundle_id != bundle_id), None)
    if stray is not None:
        out.append(Divergence(
            kind=DivergenceKind.BUNDLE_PINNING, session_id=session.session_id,
            turn_id=turn.turn_id, position=stray[0], node_id=stray[1].node_id,
            expected=bundle_id, actual=str(stray[1].bundle_id),
            message=f"{stray[1].event_type.value} of turn {turn.turn_id} carries bundle "
                    f"{stray[1].bundle_id}, its plan is on {bundle_id}"))
    if session.admitted is not None and session.admitted[0] != bundle_id:
        admitted, at = session.admitted
        div(admitted, f"turn {turn.turn_id} ran on {bundle_id}, but the session was admitted "
                      f"on {admitted} (ADMIT at {at}): bundle switched mid-session")
    if session.pinned is None:
        session.pinned = (bundle_id, digest, turn.turn_id)
    elif session.pinned[:2] != (bundle_id, digest):
        was, was_digest, first = session.pinned
        if was != bundle_id and out:
            return out  # already named against the ADMIT
        div(f"{was} ({was_digest})", f"turn {turn.turn_id} ran on {bundle_id} ({digest}), but "
                                     f"turn {first} of the session ran on {was} ({was_digest})")
    return out


def _ordered(divs: list[Divergence]) -> tuple[Divergence, ...]:
    # Check order first (the order the guide lists them), then log order.
    return tuple(sorted(divs, key=lambda d: (CHECK_ORDER[d.kind],
                                             -1 if d.position is None else d.position.offset)))
