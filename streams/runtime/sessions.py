"""Per-session state and its changelog on ``<prefix>.sessions``.

State = fold(log): the pinned bundle, the open turn (if any), the next log
sequence number, the last ingress sequence applied per lane and the lease epoch last
written. A snapshot is appended (compacted topic, key = the JSON array
``[tenant, session]``) in the same
transaction as the log events that changed it, so a processor that gains the
partition restores each session exactly where the previous owner committed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

import orjson

from streams.abi.events import Envelope
from streams.runtime.changelog import read_to_end
from streams.runtime.fencing import CancelFence
from streams.runtime.lifecycle import Marker, TurnState

__all__ = [
    "SEQ_WINDOW",
    "OpenTurn",
    "SessionKey",
    "SessionSnapshot",
    "SessionState",
    "micros",
    "read_session_snapshots",
]

_log = logging.getLogger("rspp.sessions")

# How far one ingress seq may jump ahead of the last one applied on its lane. Without a
# bound, one event with seq 2**63-1 would leave no later seq to send: the lane stays shut.
SEQ_WINDOW = 1 << 32


class SessionKey(NamedTuple):
    """A session's identity: two tenants may use the same session id and never meet."""

    tenant: str
    session: str

    def changelog_key(self) -> bytes:
        return orjson.dumps([self.tenant, self.session])

    @staticmethod
    def of(event: Envelope) -> SessionKey:
        """The session an ingress event belongs to (its tenant checked at ingress)."""
        return SessionKey(event.tenant_id, event.session_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenTurn:
    """The durable part of a turn in flight (what a successor needs to close it)."""

    turn_id: str
    plan_hash: str
    epoch: int
    last: str
    correlation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSnapshot:
    """What goes to the sessions changelog."""

    session_id: str
    tenant_id: str
    partition: int
    bundle_id: str
    next_seq: int
    last_seq_by_lane: dict[str, int]
    epoch: int
    open_turn: OpenTurn | None = None
    closed: bool = False
    turns_done: int = 0
    closed_at_us: int | None = None  # the SESSION_CLOSE's ts (voice service clock)
    # Utterances that arrived while the open turn was still responding (base64 of their
    # Confluent frames): their offsets are committed, so the snapshot must carry them.
    pending: tuple[str, ...] = ()
    bundle_digest: str | None = None  # the pinned bundle (None: written before pinning by digest)

    @property
    def key(self) -> SessionKey:
        return SessionKey(self.tenant_id, self.session_id)

    def to_bytes(self) -> bytes:
        # orjson serialises the dataclass natively (field order, dict keys sorted): 1 µs
        # instead of ~15 µs through dataclasses.asdict on every commit of every session.
        return orjson.dumps(self, option=orjson.OPT_SORT_KEYS)

    @staticmethod
    def from_bytes(raw: bytes) -> SessionSnapshot:
        data = orjson.loads(raw)
        turn = data.pop("open_turn", None)
        pending = tuple(data.pop("pending", ()))
        return SessionSnapshot(
            **data, open_turn=OpenTurn(**turn) if turn else None, pending=pending
        )


@dataclass(slots=True, kw_only=True)
class SessionState:
    """Live state of one session on this processor (mutable, owned by the processor loop)."""

    session_id: str
    tenant_id: str
    partition: int
    bundle_id: str
    next_seq: int = 0
    last_seq_by_lane: dict[str, int] = field(default_factory=dict)
    epoch: int = 0
    turn: TurnState | None = None
    turn_correlation: str | None = None
    closed: bool = False
    turns_done: int = 0
    closed_at_us: int | None = None
    fence: CancelFence = field(default_factory=CancelFence)
    bundle_digest: str | None = None

    @property
    def key(self) -> SessionKey:
        return SessionKey(self.tenant_id, self.session_id)

    def continue_after(self, before: SessionState) -> None:
        """A closed session opened again: its log continues (seq and turn ids stay unique)."""
        self.next_seq, self.turns_done, self.epoch = (
            before.next_seq,
            before.turns_done,
            before.epoch,
        )
        self.closed_at_us = before.closed_at_us  # see sent_before_reopen

    def sent_before_reopen(self, ts: datetime) -> bool:
        """True for data of a reopened session sent before its last close: it belongs to the
        call that ended there (a reconnect reused the id) and must not leak into this one."""
        return not self.closed and self.closed_at_us is not None and micros(ts) <= self.closed_at_us

    def close(self, *, at: datetime) -> None:
        """Closed by a SESSION_CLOSE sent at ``at`` (the voice service's clock)."""
        self.closed = True
        self.closed_at_us = micros(at)

    def sent_after_close(self, ts: datetime) -> bool:
        """True for input sent after the session's close: it belongs to a reopened session
        whose SESSION_OPEN it overtook (the lanes are separate topics)."""
        return self.closed and self.closed_at_us is not None and micros(ts) > self.closed_at_us

    def take_seq(self) -> int:
        """The next per-session log sequence number."""
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def snapshot(self, *, pending: tuple[str, ...] = ()) -> SessionSnapshot:
        open_turn = None
        if self.turn is not None and self.turn.is_open and self.turn.last is not None:
            open_turn = OpenTurn(
                turn_id=self.turn.turn_id,
                plan_hash=self.turn.plan_hash,
                epoch=self.turn.lease_epoch,
                last=self.turn.last.value,
                correlation_id=self.turn_correlation or self.turn.turn_id,
            )
        return SessionSnapshot(
            session_id=self.session_id,
            tenant_id=self.tenant_id,
            partition=self.partition,
            bundle_id=self.bundle_id,
            next_seq=self.next_seq,
            last_seq_by_lane=dict(self.last_seq_by_lane),
            epoch=self.epoch,
            open_turn=open_turn,
            closed=self.closed,
            turns_done=self.turns_done,
            closed_at_us=self.closed_at_us,
            pending=pending,
            bundle_digest=self.bundle_digest,
        )

    @staticmethod
    def restore(snap: SessionSnapshot) -> SessionState:
        state = SessionState(
            session_id=snap.session_id,
            tenant_id=snap.tenant_id,
            partition=snap.partition,
            bundle_id=snap.bundle_id,
            next_seq=snap.next_seq,
            last_seq_by_lane=dict(snap.last_seq_by_lane),
            epoch=snap.epoch,
            closed=snap.closed,
            turns_done=snap.turns_done,
            closed_at_us=snap.closed_at_us,
            bundle_digest=snap.bundle_digest,
        )
        if snap.open_turn is not None:
            ot = snap.open_turn
            state.turn = replace(
                TurnState(
                    turn_id=ot.turn_id,
                    session_id=snap.session_id,
                    plan_hash=ot.plan_hash,
                    lease_epoch=ot.epoch,
                ),
                last=Marker(ot.last),
            )
            state.turn_correlation = ot.correlation_id
        return state


def micros(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000)


def read_session_snapshots(
    bootstrap: str, sessions_topic: str, partitions: Iterable[int], *, timeout: float = 30.0
) -> dict[SessionKey, SessionSnapshot]:
    """The latest committed snapshot of every session in ``partitions`` (tombstones forget).

    Identity comes from the snapshot itself, so snapshots written under the older
    session-id-only key are read the same way."""
    out: dict[SessionKey, SessionSnapshot] = {}
    keys: dict[bytes, SessionKey] = {}
    for msg in read_to_end(bootstrap, sessions_topic, partitions, timeout=timeout):
        raw_key, value = msg.key(), msg.value()
        if raw_key is None:
            continue
        if value is None:
            gone = keys.pop(raw_key, None)
            if gone is not None:
                out.pop(gone, None)
        else:
            try:
                snap = SessionSnapshot.from_bytes(value)
            except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
                # Not ours (written by hand, another tool): one bad record must not keep
                # every session of the partition from being restored.
                _log.error("%s[%d]@%d is not a session snapshot (%s); skipped",
                           sessions_topic, msg.partition(), msg.offset(), exc)
                continue
            keys[raw_key] = snap.key
            out[snap.key] = snap
    return out
