"""Stamps and appends events: the one path from the turn engine to the log.

Every event gets the session's next log ``seq``, the partition's current lease
epoch (refused when the lease is gone: a revoked or fenced processor writes
nothing), the turn's plan hash and bundle, and its correlation. Records go to
the open transaction of :class:`TransactionalEgress`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from streams.abi.codec import EventCodec
from streams.abi.events import (
    Correlation,
    DeadLetter,
    Envelope,
    Header,
    LeaseGranted,
    Payload,
)
from streams.lanes import RejectedRecord
from streams.observability.observer import NO_OBSERVER, Observer
from streams.runtime.egress import RecordSink
from streams.runtime.leases import Lease, LeaseBook, lease_key
from streams.runtime.sessions import SessionKey, SessionSnapshot, SessionState
from streams.topics import Lane, TopicLayout

__all__ = ["EventWriter", "TurnStamp", "partition_session_id"]

SYSTEM_TENANT = "__system__"


def partition_session_id(partition: int) -> str:
    """The pseudo-session that carries a partition's lease events."""
    return f"__partition-{partition}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnStamp:
    """What every event of one turn carries."""

    turn_id: str
    plan_hash: str
    bundle_id: str
    correlation_id: str
    trace_id: str | None = None


class EventWriter:
    """Builds envelopes and appends them to the log / leases / sessions / DLQ topics."""

    def __init__(
        self,
        *,
        layout: TopicLayout,
        codec: EventCodec,
        egress: RecordSink,
        leases: LeaseBook,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self.layout = layout
        self.observer = observer  # metrics and traces are derived from what is appended
        self.codec = codec
        self.egress = egress
        self.leases = leases
        self.appended = 0
        # session -> {event_id: encoded frame} of what its last snapshot held: a flooded
        # session holds up to a thousand utterances, re-encoding them at every commit cost ~5 ms.
        self._frames: dict[SessionKey, dict[str, tuple[Envelope, str]]] = {}

    def log(
        self,
        session: SessionState,
        payload: Payload,
        *,
        turn: TurnStamp | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        node_id: str | None = None,
        event_id: str | None = None,
        bundle_id: str | None = None,
        ts: datetime | None = None,
    ) -> Envelope:
        """Append one event of ``session`` to the log; returns it (its event_id is the causation of what follows).

        Recorded inputs pass their original ``event_id`` and ``ts`` (the voice
        service's clock), so latencies from input to output can be read off the log.
        """
        epoch = self.leases.epoch(session.partition)  # FencedError when the lease is gone
        corr = Correlation(
            correlation_id=turn.correlation_id if turn else (correlation_id or session.session_id),
            causation_id=causation_id,
            trace_id=turn.trace_id if turn else None,
        )
        event = Envelope.new(
            payload,
            tenant_id=session.tenant_id,
            session_id=session.session_id,
            seq=session.take_seq(),
            lease_epoch=epoch,
            turn_id=turn.turn_id if turn else None,
            correlation=corr,
            bundle_id=turn.bundle_id if turn else bundle_id,
            plan_hash=turn.plan_hash if turn else None,
            node_id=node_id,
            event_id=event_id,
            ts=ts,
        )
        session.epoch = epoch
        self._append(self.layout.log, session.partition, session.session_id, event)
        self.observer.logged(event)
        return event

    def lease(self, lease: Lease) -> Envelope:
        """LeaseGranted to the leases topic (compacted by partition) and the log."""
        event = Envelope.new(
            LeaseGranted(partition=lease.partition, epoch=lease.epoch, holder=lease.holder),
            tenant_id=SYSTEM_TENANT,
            session_id=partition_session_id(lease.partition),
            seq=lease.epoch,
            lease_epoch=lease.epoch,
        )
        value, headers = self.codec.encode_with_headers(event)
        self.egress.append(
            self.layout.leases,
            partition=lease.partition,
            key=lease_key(lease.partition),
            value=value,
            headers=headers,
        )
        self.egress.append(
            self.layout.log,
            partition=lease.partition,
            key=event.session_id,
            value=value,
            headers=headers,
        )
        self.appended += 2
        self.observer.logged(event)
        return event

    def snapshot(self, session: SessionState, *, pending: Iterable[Envelope] = ()) -> None:
        """Append the session's changelog snapshot, with the utterances it still holds."""
        known = self._frames.pop(session.key, {})
        held = tuple(pending)
        frames = tuple(self._frame(e, known.get(e.event_id)) for e in held)
        if held:
            self._frames[session.key] = {
                e.event_id: (e, f) for e, f in zip(held, frames, strict=True)
            }
        self.egress.append(
            self.layout.sessions,
            partition=session.partition,
            key=session.key.changelog_key(),
            value=session.snapshot(pending=frames).to_bytes(),
        )

    def forget(self, key: SessionKey) -> None:
        """Drop what is cached for a session whose partition moved away."""
        self._frames.pop(key, None)

    def _frame(self, event: Envelope, cached: tuple[Envelope, str] | None) -> str:
        # The very same held object, not just the same id: a client may reuse event ids.
        if cached is not None and cached[0] is event:
            return cached[1]
        return base64.b64encode(self.codec.encode(event)).decode()

    def pending_of(self, snapshot: SessionSnapshot) -> list[Envelope]:
        """Decode the held utterances of a restored snapshot."""
        return [self.codec.decode(base64.b64decode(f)) for f in snapshot.pending]

    def dead_letter(
        self,
        rejected: RejectedRecord,
        *,
        tenant_id: str | None = None,
        session_id: str | None = None,
    ) -> None:
        """Route an ingress record that cannot be processed to the DLQ, original bytes intact.

        ``tenant_id`` and ``session_id`` are what the processor established (the topic's
        tenant, the decoded body's session), never the record's headers: every tenant view
        of the DLQ trusts them."""
        event = Envelope.new(
            DeadLetter(
                reason=rejected.reason,
                original_topic=rejected.topic,
                original_partition=rejected.partition,
                original_offset=rejected.offset,
                original_bytes=rejected.value,
                original_headers=tuple(Header(key=k, value=v) for k, v in rejected.headers),
            ),
            tenant_id=tenant_id or SYSTEM_TENANT,
            session_id=session_id or "__unrouted__",
            seq=rejected.offset,
            lease_epoch=self._epoch_or_zero(rejected.partition),
        )
        value, headers = self.codec.encode_with_headers(event)
        self.egress.append(
            self.layout.dlq,
            partition=rejected.partition,
            key=rejected.key,
            value=value,
            headers=[*headers, ("rspp_dlq_reason", rejected.reason.encode())],
        )
        self.appended += 1
        self.observer.logged(event)

    def dead_letter_event(self, event: Envelope, *, reason: str, partition: int) -> None:
        """DLQ an already-decoded ingress event (re-encoded: its original offset was committed)."""
        self.dead_letter(
            self.rejected_event(event, reason=reason, partition=partition),
            tenant_id=event.tenant_id,
            session_id=event.session_id,
        )

    def rejected_event(self, event: Envelope, *, reason: str, partition: int) -> RejectedRecord:
        """A decoded ingress event as a DLQ candidate, re-encoded (offset -1: it was committed
        long ago, held in a snapshot)."""
        value, headers = self.codec.encode_with_headers(event)
        return RejectedRecord(
            reason=reason,
            topic=self.layout.lane_topic(
                Lane(event.lane.value), event.tenant_id if self.layout.multi_tenant else None
            ),
            partition=partition,
            offset=-1,
            key=event.session_id.encode(),
            value=value,
            headers=tuple(headers),
            timestamp_ms=0,
        )

    def _epoch_or_zero(self, partition: int) -> int:
        return self.leases.epoch(partition) if partition in self.leases.partitions else 0

    def _append(self, topic: str, partition: int, key: str, event: Envelope) -> None:
        value, headers = self.codec.encode_with_headers(event)
        self.egress.append(topic, partition=partition, key=key, value=value, headers=headers)
        self.appended += 1
