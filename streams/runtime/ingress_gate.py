"""The ingress gate: what a decoded lane event must satisfy before the turn engine sees it.

Ingress is the one gate (docs/architecture.md, "Trust"): anything a later model would
refuse is refused here, with a reason, so the record goes to the DLQ instead of raising
deep inside the engine. The rules are read off the definitions they protect, not
restated: id lengths and the timestamp floor come from the turn-plan models that the
event's fields flow into, the event types a producer may send from the ABI's
``PRODUCED`` flag, the audio format from the nodes' item contract.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import annotated_types
from pydantic import BaseModel

from pipelines.models.plan import MAX_ID_LENGTH, SessionSnapshot, TurnOpenRequest
from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.abi.errors import CodecError
from streams.lanes import LaneRecord
from streams.nodes.items import AUDIO_CHANNELS, AUDIO_CODECS, AUDIO_SAMPLE_RATES_HZ
from streams.runtime.ingress_skew import IngressSkewGate
from streams.runtime.leases import LeaseBook
from streams.runtime.sessions import micros
from streams.topics import TopicLayout

__all__ = ["PRODUCER_EVENT_TYPES", "Admission", "IngressGate", "check_ingress"]

# Event types a voice service may send, per lane (everything else is the processor's own).
PRODUCER_EVENT_TYPES: dict[ev.Lane, frozenset[ev.EventType]] = {
    lane: frozenset(
        cls.EVENT_TYPE for cls in ev.PAYLOAD_TYPES.values() if cls.PRODUCED and cls.LANE is lane
    )
    for lane in ev.Lane
}


@dataclass(frozen=True, slots=True)
class _TextRule:
    label: str  # the envelope field, as a user reads it
    source: str  # the model field the rule comes from
    get: Callable[[ev.Envelope], str]
    min_length: int
    max_length: int | None

    def problem(self, event: ev.Envelope) -> str | None:
        value = self.get(event)
        if len(value) < self.min_length:
            return f"{self.label} is empty" if not value else f"{self.label} is too short"
        if self.max_length is not None and len(value) > self.max_length:
            return f"{self.label} is {len(value)} characters long (at most {self.max_length})"
        return None


def _text_rule(
    label: str, get: Callable[[ev.Envelope], str], model: type[BaseModel], name: str
) -> _TextRule:
    lo, hi = 0, None
    for meta in model.model_fields[name].metadata:
        if isinstance(meta, annotated_types.MinLen):
            lo = meta.min_length
        elif isinstance(meta, annotated_types.MaxLen):
            hi = meta.max_length
    return _TextRule(label, f"{model.__name__}.{name}", get, lo, hi)


def _lower_bound(model: type[BaseModel], name: str) -> int:
    for meta in model.model_fields[name].metadata:
        if isinstance(meta, annotated_types.Ge) and isinstance(meta.ge, int):
            return meta.ge
    raise LookupError(f"{model.__name__}.{name} declares no lower bound")


_TEXT_RULES = (
    # The log carries the producer's event id (causation refers to it); nothing else
    # bounds it, so it takes the id limit of the plan models.
    _TextRule("event_id", "MAX_ID_LENGTH", lambda e: e.event_id, 1, MAX_ID_LENGTH),
    _text_rule("tenant_id", lambda e: e.tenant_id, SessionSnapshot, "tenant_id"),
    _text_rule("session_id", lambda e: e.session_id, SessionSnapshot, "session_id"),
    _text_rule(
        "correlation.correlation_id",
        lambda e: e.correlation.correlation_id,
        TurnOpenRequest,
        "correlation_id",
    ),
)
# A turn's opening time is the triggering event's ts.
_MIN_TS_US = _lower_bound(TurnOpenRequest, "opened_at_us")


def check_ingress(event: ev.Envelope, *, lane: ev.Lane) -> str | None:
    """Why ``event``, read from ``lane``'s topic, must not reach the engine; None if it may."""
    payload = event.payload
    if event.event_type not in PRODUCER_EVENT_TYPES[lane]:
        allowed = ", ".join(sorted(PRODUCER_EVENT_TYPES[lane]))
        return f"{event.event_type.value} may not be sent on the {lane.value} lane (only {allowed})"
    if event.lane is not lane:
        return f"event lane {event.lane.value} arrived on the {lane.value} lane"
    for rule in _TEXT_RULES:
        problem = rule.problem(event)
        if problem is not None:
            return problem
    if micros(event.ts) < _MIN_TS_US:
        return f"ts {event.ts.isoformat()} is before 1970-01-01 (turn start times are >= 0)"
    return _payload_problem(payload)


def _payload_problem(payload: ev.Payload) -> str | None:
    if isinstance(payload, ev.AudioChunk):
        if payload.codec not in AUDIO_CODECS:
            return f"audio codec {payload.codec[:32]!r} is not one of {sorted(AUDIO_CODECS)}"
        if payload.channels != AUDIO_CHANNELS:
            return f"audio has {payload.channels} channels (mono only)"
        if payload.sample_rate not in AUDIO_SAMPLE_RATES_HZ:
            rates = AUDIO_SAMPLE_RATES_HZ
            return (
                f"sample_rate {payload.sample_rate} Hz is outside {rates.start}..{rates.stop - 1}"
            )
        if len(payload.audio) % 2:
            return f"PCM16 audio of odd length ({len(payload.audio)} bytes)"
    elif isinstance(payload, ev.Transcript):
        confidence = payload.confidence
        if confidence is not None and not (math.isfinite(confidence) and 0 <= confidence <= 1):
            return f"transcript confidence {confidence} is not within 0..1"
    elif isinstance(payload, ev.Telemetry) and not math.isfinite(payload.value):
        return f"telemetry value {payload.value} is not finite"
    return None


@dataclass(frozen=True, slots=True)
class Admission:
    """What the gate made of one lane record: the event (when it decoded), the reason it must
    be dead-lettered (None: it may be applied), and the tenant and session its dead letter is
    filed under (the topic's tenant, else the body's; never a header's tenant)."""

    event: ev.Envelope | None
    reason: str | None
    tenant: str | None
    session: str | None


class IngressGate:
    """Decodes a lane record and checks it: the one gate between producers and the engine."""

    def __init__(
        self,
        *,
        codec: EventCodec,
        layout: TopicLayout,
        leases: LeaseBook,
        skew: IngressSkewGate | None = None,
    ) -> None:
        self.codec = codec
        self.layout = layout
        self.leases = leases
        self.skew = skew

    def admit(self, record: LaneRecord) -> Admission:
        tenant = self.layout.tenant_of(record.topic)  # None: single-tenant, the body names it
        event, reason = self._check(record, tenant)
        if event is None:
            return Admission(None, reason, tenant, record.session or None)
        return Admission(event, reason, tenant or event.tenant_id, event.session_id)

    def _check(self, record: LaneRecord, tenant: str | None) -> tuple[ev.Envelope | None, str | None]:
        if record.value is None:
            return None, "empty record value"
        if self.skew is not None:
            outside = self.skew.check(record.value)
            if outside is not None:
                return None, outside
        try:
            event = self.codec.decode(record.value)
        except CodecError as exc:
            return None, f"{exc.reason}: {exc}"
        if tenant is not None and event.tenant_id != tenant:
            return event, f"tenant_id {event.tenant_id[:64]!r} arrived on tenant {tenant!r}'s topic"
        problem = check_ingress(event, lane=ev.Lane(record.lane.value))
        if problem is None:
            problem = self._epoch_problem(record.partition, event.lease_epoch)
        return event, problem

    def _epoch_problem(self, partition: int, epoch: int) -> str | None:
        current = self.leases.epoch(partition) if partition in self.leases.partitions else 0
        if self.leases.is_stale(partition, epoch):
            return f"stale lease epoch {epoch} (partition {partition} is at epoch {current})"
        if self.leases.is_ahead(partition, epoch):
            return (
                f"lease epoch {epoch} is ahead of partition {partition}'s epoch {current} "
                "(only the processor grants epochs)"
            )
        return None
