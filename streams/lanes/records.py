"""Lane records: what ingress queues before the processor decodes them.

A record's lane is its topic's; the ``rspp_session`` header is only a hint used to group
records for shedding before decode (docs/architecture.md, "The body is the truth").
Headers are optional: a record in the ABI's Confluent-framed Avro without any ``rspp_*``
header is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.topics import Lane

__all__ = [
    "LANE_HEADER",
    "SESSION_HEADER",
    "TENANT_HEADER",
    "Headers",
    "LaneRecord",
    "RecordPosition",
    "RejectedRecord",
    "session_hint",
    "tenant_hint",
]

LANE_HEADER = "rspp_lane"
SESSION_HEADER = "rspp_session"
TENANT_HEADER = "rspp_tenant"

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPosition:
    """Where a record sits in Kafka; the unit of offset accounting."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneRecord:
    """A routed ingress record. ``value`` stays encoded: the codec decodes it later."""

    lane: Lane
    session: str  # header hint ("" when none); the decoded body is authoritative
    # The topic's tenant in a multi-tenant deployment; else the ``rspp_tenant`` header hint.
    tenant: str = ""
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int

    @property
    def position(self) -> RecordPosition:
        return RecordPosition(topic=self.topic, partition=self.partition, offset=self.offset)


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedRecord:
    """A record that cannot be routed, with the reason and its original bytes, for the DLQ."""

    reason: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int

    @property
    def position(self) -> RecordPosition:
        return RecordPosition(topic=self.topic, partition=self.partition, offset=self.offset)


def _last(headers: Sequence[tuple[str, bytes | None]], name: str) -> bytes | None:
    # Last value wins, as Kafka's Headers.lastHeader: a relay may append an override.
    value: bytes | None = None
    for key, raw in headers:
        if key == name:
            value = raw
    return value


def session_hint(headers: Sequence[tuple[str, bytes | None]] | None) -> str:
    """The session the ``rspp_session`` header names, or ``""`` when it is absent or unusable.

    Only a hint: the lane comes from the topic and the session from the decoded body, which
    wins where the two disagree. The hint lets records be grouped for shedding before decode.
    """
    return _hint(headers, SESSION_HEADER)


def tenant_hint(headers: Sequence[tuple[str, bytes | None]] | None) -> str:
    """The tenant the ``rspp_tenant`` header names, or ``""`` (a hint, like the session's)."""
    return _hint(headers, TENANT_HEADER)


def _hint(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> str:
    raw = _last(headers or (), name)
    if not raw:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return ""
