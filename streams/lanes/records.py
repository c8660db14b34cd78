"""Lane records and header-only routing (no body decode on the hot path).

Routing headers follow DESIGN.md: ``rspp_lane`` (control|data|telemetry) and
``rspp_session``, utf-8. A record whose routing headers are missing or garbled
becomes a :class:`RejectedRecord` with a reason, for the DLQ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.topics import Lane

__all__ = [
    "LANE_HEADER",
    "SESSION_HEADER",
    "Headers",
    "LaneRecord",
    "RecordPosition",
    "RejectedRecord",
    "route",
]

LANE_HEADER = "rspp_lane"
SESSION_HEADER = "rspp_session"

Headers = tuple[tuple[str, bytes | None], ...]

_LANES_BY_VALUE: dict[bytes, Lane] = {lane.value.encode(): lane for lane in Lane}


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
    session: str
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


def _last(headers: Sequence[tuple[str, bytes | None]], name: str) -> tuple[bool, bytes | None]:
    # Last value wins, as Kafka's Headers.lastHeader: a relay may append an override.
    found = False
    value: bytes | None = None
    for key, raw in headers:
        if key == name:
            found, value = True, raw
    return found, value


def route(headers: Sequence[tuple[str, bytes | None]] | None) -> tuple[Lane, str] | str:
    """Lane and session from routing headers, or the reason they are unusable."""
    hdrs = headers or ()
    found, raw_lane = _last(hdrs, LANE_HEADER)
    if not found:
        return f"missing header {LANE_HEADER}"
    lane = _LANES_BY_VALUE.get(raw_lane) if raw_lane is not None else None
    if lane is None:
        shown = raw_lane[:32] if raw_lane is not None else None
        return f"header {LANE_HEADER}={shown!r} is not one of control|data|telemetry"
    found, raw_session = _last(hdrs, SESSION_HEADER)
    if not found:
        return f"missing header {SESSION_HEADER}"
    if not raw_session:
        return f"header {SESSION_HEADER} is empty"
    try:
        session = raw_session.decode("utf-8")
    except UnicodeDecodeError:
        return f"header {SESSION_HEADER} is not valid utf-8"
    if not session.strip():
        return f"header {SESSION_HEADER} is blank"
    return lane, session
