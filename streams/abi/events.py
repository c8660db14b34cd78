"""Typed events of the ABI: one frozen dataclass per Avro record, enums per Avro enum.

Field names and order equal the Avro schemas in ``avro/`` (a test holds them
together). Events are immutable values; :meth:`Envelope.new` fills the ids,
event type, lane and timestamp that callers should not have to think about.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar, TypeVar

__all__ = [
    "PAYLOAD_TYPES",
    "Admit",
    "AudioChunk",
    "Cancel",
    "CancelScope",
    "Correlation",
    "DeadLetter",
    "Defer",
    "Divergence",
    "EndOfUtterance",
    "Envelope",
    "EventType",
    "FallbackAction",
    "FallbackDecision",
    "Header",
    "Lane",
    "LeaseGranted",
    "NodeError",
    "NodeErrorKind",
    "NodeOutput",
    "OutputAccepted",
    "Payload",
    "PlaybackStarted",
    "Reject",
    "SessionClose",
    "SessionOpen",
    "Shed",
    "Telemetry",
    "Transcript",
    "TranscriptKind",
    "TurnAbort",
    "TurnActive",
    "TurnClose",
    "TurnCommit",
    "TurnOpen",
    "TurnOutcome",
]


class Lane(StrEnum):
    """Scheduling lane; the value is also the ``rspp_lane`` header value."""

    CONTROL = "control"
    DATA = "data"
    TELEMETRY = "telemetry"


class EventType(StrEnum):
    AUDIO_CHUNK = "AUDIO_CHUNK"
    END_OF_UTTERANCE = "END_OF_UTTERANCE"
    TRANSCRIPT = "TRANSCRIPT"
    SESSION_OPEN = "SESSION_OPEN"
    SESSION_CLOSE = "SESSION_CLOSE"
    ADMIT = "ADMIT"
    REJECT = "REJECT"
    DEFER = "DEFER"
    TURN_OPEN = "TURN_OPEN"
    TURN_ACTIVE = "TURN_ACTIVE"
    TURN_COMMIT = "TURN_COMMIT"
    TURN_ABORT = "TURN_ABORT"
    TURN_CLOSE = "TURN_CLOSE"
    CANCEL = "CANCEL"
    NODE_OUTPUT = "NODE_OUTPUT"
    NODE_ERROR = "NODE_ERROR"
    FALLBACK_DECISION = "FALLBACK_DECISION"
    OUTPUT_ACCEPTED = "OUTPUT_ACCEPTED"
    PLAYBACK_STARTED = "PLAYBACK_STARTED"
    LEASE_GRANTED = "LEASE_GRANTED"
    SHED = "SHED"
    DIVERGENCE = "DIVERGENCE"
    TELEMETRY = "TELEMETRY"
    DEAD_LETTER = "DEAD_LETTER"


class TranscriptKind(StrEnum):
    PARTIAL = "PARTIAL"
    FINAL = "FINAL"


class TurnOutcome(StrEnum):
    COMMITTED = "COMMITTED"
    ABORTED = "ABORTED"


class CancelScope(StrEnum):
    TURN = "TURN"
    NODE = "NODE"
    SESSION = "SESSION"


class NodeErrorKind(StrEnum):
    TIMEOUT = "TIMEOUT"
    PROVIDER = "PROVIDER"
    INVALID_OUTPUT = "INVALID_OUTPUT"
    CANCELLED = "CANCELLED"
    INTERNAL = "INTERNAL"


class FallbackAction(StrEnum):
    NONE = "NONE"
    RETRY = "RETRY"
    FALLBACK = "FALLBACK"
    DEGRADE = "DEGRADE"
    ABORT_TURN = "ABORT_TURN"


class Payload:
    """Base of payload records. ``AVRO_NAME`` is the union branch, ``EVENT_TYPE`` its tag."""

    __slots__ = ()
    AVRO_NAME: ClassVar[str]
    EVENT_TYPE: ClassVar[EventType]
    LANE: ClassVar[Lane]
    # True for the events a voice service may produce (on ``LANE``); everything else is
    # written by the processor only and is refused at ingress.
    PRODUCED: ClassVar[bool]


PAYLOAD_TYPES: dict[str, type[Payload]] = {}
_P = TypeVar("_P", bound=type[Payload])


def _payload(
    event_type: EventType, lane: Lane = Lane.CONTROL, *, produced: bool = False
) -> Callable[[_P], _P]:
    def register(cls: _P) -> _P:
        cls.AVRO_NAME = f"rspp.events.{cls.__name__}"
        cls.EVENT_TYPE = event_type
        cls.LANE = lane
        cls.PRODUCED = produced
        PAYLOAD_TYPES[cls.AVRO_NAME] = cls
        return cls

    return register


@_payload(EventType.AUDIO_CHUNK, Lane.DATA, produced=True)
@dataclass(frozen=True, slots=True, kw_only=True)
class AudioChunk(Payload):
    codec: str
    sample_rate: int
    channels: int
    seq: int
    audio: bytes


@_payload(EventType.END_OF_UTTERANCE, Lane.DATA, produced=True)
@dataclass(frozen=True, slots=True, kw_only=True)
class EndOfUtterance(Payload):
    last_chunk_seq: int | None = None
    reason: str | None = None


@_payload(EventType.TRANSCRIPT, Lane.DATA, produced=True)
@dataclass(frozen=True, slots=True, kw_only=True)
class Transcript(Payload):
    kind: TranscriptKind
    text: str
    confidence: float | None = None
    language: str | None = None


@_payload(EventType.SESSION_OPEN, produced=True)
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionOpen(Payload):
    transport: str | None = None
    locale: str | None = None
    profile: str | None = None


@_payload(EventType.SESSION_CLOSE, produced=True)
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionClose(Payload):
    reason: str


@_payload(EventType.ADMIT)
@dataclass(frozen=True, slots=True, kw_only=True)
class Admit(Payload):
    reason: str | None = None


@_payload(EventType.REJECT)
@dataclass(frozen=True, slots=True, kw_only=True)
class Reject(Payload):
    reason: str


@_payload(EventType.DEFER)
@dataclass(frozen=True, slots=True, kw_only=True)
class Defer(Payload):
    reason: str
    retry_after_ms: int | None = None


@_payload(EventType.TURN_OPEN)
@dataclass(frozen=True, slots=True, kw_only=True)
class TurnOpen(Payload):
    plan_hash: str
    plan_json: str


@_payload(EventType.TURN_ACTIVE)
@dataclass(frozen=True, slots=True, kw_only=True)
class TurnActive(Payload):
    trigger: str | None = None


@_payload(EventType.TURN_COMMIT)
@dataclass(frozen=True, slots=True, kw_only=True)
class TurnCommit(Payload):
    outputs: int


@_payload(EventType.TURN_ABORT)
@dataclass(frozen=True, slots=True, kw_only=True)
class TurnAbort(Payload):
    reason: str


@_payload(EventType.TURN_CLOSE)
@dataclass(frozen=True, slots=True, kw_only=True)
class TurnClose(Payload):
    outcome: TurnOutcome


@_payload(EventType.CANCEL, produced=True)
@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(Payload):
    scope: CancelScope
    target: str
    reason: str | None = None


@_payload(EventType.NODE_OUTPUT)
@dataclass(frozen=True, slots=True, kw_only=True)
class NodeOutput(Payload):
    output_seq: int
    kind: str
    text: str | None = None
    data: bytes | None = None
    content_type: str | None = None
    final: bool
    latency_us: int | None = None


@_payload(EventType.NODE_ERROR)
@dataclass(frozen=True, slots=True, kw_only=True)
class NodeError(Payload):
    error_kind: NodeErrorKind
    message: str
    fallback: FallbackAction


@_payload(EventType.FALLBACK_DECISION)
@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackDecision(Payload):
    action: FallbackAction
    what: str
    from_value: str
    to_value: str
    reason: str


@_payload(EventType.OUTPUT_ACCEPTED)
@dataclass(frozen=True, slots=True, kw_only=True)
class OutputAccepted(Payload):
    output_event_id: str


@_payload(EventType.PLAYBACK_STARTED)
@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStarted(Payload):
    output_event_id: str
    offset_ms: int | None = None


@_payload(EventType.LEASE_GRANTED)
@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseGranted(Payload):
    partition: int
    epoch: int
    holder: str


@_payload(EventType.SHED)
@dataclass(frozen=True, slots=True, kw_only=True)
class Shed(Payload):
    reason: str
    rule: str
    defaulting_source: str
    lane: Lane
    shed_count: int


@_payload(EventType.DIVERGENCE)
@dataclass(frozen=True, slots=True, kw_only=True)
class Divergence(Payload):
    check: str
    expected: str
    actual: str
    offset: int | None = None


@_payload(EventType.TELEMETRY, Lane.TELEMETRY, produced=True)
@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry(Payload):
    name: str
    value: float
    unit: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """A Kafka record header as read (inside :class:`DeadLetter`)."""

    key: str
    value: bytes | None = None


@_payload(EventType.DEAD_LETTER)
@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter(Payload):
    reason: str
    original_topic: str
    original_partition: int
    original_offset: int
    original_bytes: bytes | None = None
    original_headers: tuple[Header, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Correlation:
    correlation_id: str
    causation_id: str | None = None
    trace_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One event. ``event_type`` must name the payload's record; ``ts`` is UTC-aware."""

    event_id: str
    event_type: EventType
    lane: Lane
    tenant_id: str
    session_id: str
    turn_id: str | None = None
    correlation: Correlation
    lease_epoch: int
    bundle_id: str | None = None
    plan_hash: str | None = None
    node_id: str | None = None
    seq: int
    ts: datetime
    payload: Payload = field(repr=True)

    def __post_init__(self) -> None:
        # Cheap invariants that would otherwise corrupt the log silently.
        if self.payload.EVENT_TYPE is not self.event_type:
            raise ValueError(
                f"event_type {self.event_type} does not match payload {type(self.payload).__name__}"
            )
        if self.ts.tzinfo is None:
            raise ValueError("ts must be timezone-aware (UTC)")

    @classmethod
    def new(
        cls,
        payload: Payload,
        *,
        tenant_id: str,
        session_id: str,
        seq: int,
        lease_epoch: int = 0,
        turn_id: str | None = None,
        correlation: Correlation | None = None,
        lane: Lane | None = None,
        bundle_id: str | None = None,
        plan_hash: str | None = None,
        node_id: str | None = None,
        event_id: str | None = None,
        ts: datetime | None = None,
    ) -> Envelope:
        """An envelope with a fresh event_id, the payload's type and default lane, ts = now."""
        return cls(
            event_id=event_id or str(uuid.uuid4()),
            event_type=payload.EVENT_TYPE,
            lane=lane or payload.LANE,
            tenant_id=tenant_id,
            session_id=session_id,
            turn_id=turn_id,
            correlation=correlation or Correlation(correlation_id=turn_id or session_id),
            lease_epoch=lease_epoch,
            bundle_id=bundle_id,
            plan_hash=plan_hash,
            node_id=node_id,
            seq=seq,
            ts=ts or datetime.now(UTC),
            payload=payload,
        )
