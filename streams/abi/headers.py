"""Routing headers: CloudEvents Kafka binary mode (``ce_*``) plus ``rspp_*``.

The lane scheduler routes on ``rspp_lane`` and ``rspp_session`` without decoding
the Avro body; replay and audit read epoch, turn and correlation the same way.
Values are UTF-8 strings; the epoch is a decimal string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.abi.errors import HeaderError
from streams.abi.events import PAYLOAD_TYPES, Envelope, EventType, Lane

__all__ = [
    "CE_SPECVERSION",
    "CONTENT_TYPE",
    "HeaderValue",
    "RoutingHeaders",
    "lane_of",
    "parse_routing_headers",
    "routing_headers",
]

CE_SPECVERSION = "1.0"
CONTENT_TYPE = "application/avro"

# The shapes confluent_kafka produces and returns (``Producer.produce(headers=...)``).
HeaderValue = str | bytes | None
HeaderList = Sequence[tuple[str, HeaderValue]]

_SPEC = CE_SPECVERSION.encode()
_CT = CONTENT_TYPE.encode()
_LANE_BYTES: dict[Lane, bytes] = {lane: lane.value.encode() for lane in Lane}
_LANE_BY_BYTES: dict[bytes, Lane] = {v: k for k, v in _LANE_BYTES.items()}
_TYPE_BY_CE: dict[str, EventType] = {name: cls.EVENT_TYPE for name, cls in PAYLOAD_TYPES.items()}


def _rfc3339(event: Envelope) -> bytes:
    return event.ts.isoformat(timespec="microseconds").replace("+00:00", "Z").encode()


def routing_headers(event: Envelope, *, source: str) -> list[tuple[str, bytes]]:
    """The headers to produce ``event`` with (``ce_source`` names the writer)."""
    headers: list[tuple[str, bytes]] = [
        ("ce_specversion", _SPEC),
        ("ce_id", event.event_id.encode()),
        ("ce_type", event.payload.AVRO_NAME.encode()),
        ("ce_source", source.encode()),
        ("ce_time", _rfc3339(event)),
        ("content-type", _CT),
        ("rspp_lane", _LANE_BYTES[event.lane]),
        ("rspp_session", event.session_id.encode()),
        ("rspp_tenant", event.tenant_id.encode()),
        ("rspp_epoch", str(event.lease_epoch).encode()),
        ("rspp_correlation", event.correlation.correlation_id.encode()),
    ]
    if event.turn_id is not None:
        headers.append(("rspp_turn", event.turn_id.encode()))
    return headers


@dataclass(frozen=True, slots=True)
class RoutingHeaders:
    """What routing, fencing and audit need, read from headers only.

    ``event_type`` is None when ``ce_type`` names a type this build does not know
    (a newer writer): routing must not fail on it.
    """

    lane: Lane
    session_id: str
    tenant_id: str | None
    turn_id: str | None
    epoch: int | None
    correlation_id: str | None
    event_id: str | None
    event_type: EventType | None


_WANTED = frozenset(
    {
        "rspp_lane",
        "rspp_session",
        "rspp_tenant",
        "rspp_turn",
        "rspp_epoch",
        "rspp_correlation",
        "ce_id",
        "ce_type",
    }
)


def _text(key: str, value: HeaderValue) -> str:
    if value is None:
        raise HeaderError(f"header {key} has no value")
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise HeaderError(f"header {key} is not UTF-8: {value!r:.60}") from None


def parse_routing_headers(headers: HeaderList | None) -> RoutingHeaders:
    """Parse a confluent_kafka ``Message.headers()`` list; HeaderError if lane/session unusable."""
    found: dict[str, HeaderValue] = {}
    for key, value in headers or ():
        if key in _WANTED:
            found[key] = value  # last one wins, as Kafka clients do for lookups
    lane_raw = found.get("rspp_lane")
    if lane_raw is None:
        raise HeaderError("missing header rspp_lane")
    lane = _LANE_BY_BYTES.get(lane_raw.encode() if isinstance(lane_raw, str) else lane_raw)
    if lane is None:
        raise HeaderError(f"header rspp_lane has unknown value {lane_raw!r:.40}")
    if "rspp_session" not in found:
        raise HeaderError("missing header rspp_session")
    session = _text("rspp_session", found["rspp_session"])
    epoch: int | None = None
    if "rspp_epoch" in found:
        raw = _text("rspp_epoch", found["rspp_epoch"])
        if not raw.isdigit():
            raise HeaderError(f"header rspp_epoch is not a non-negative integer: {raw!r:.40}")
        epoch = int(raw)
    opt = {
        k: _text(k, found[k]) if k in found else None
        for k in ("rspp_tenant", "rspp_turn", "rspp_correlation", "ce_id", "ce_type")
    }
    ce_type = opt["ce_type"]
    return RoutingHeaders(
        lane=lane,
        session_id=session,
        tenant_id=opt["rspp_tenant"],
        turn_id=opt["rspp_turn"],
        epoch=epoch,
        correlation_id=opt["rspp_correlation"],
        event_id=opt["ce_id"],
        event_type=_TYPE_BY_CE.get(ce_type) if ce_type is not None else None,
    )


def lane_of(headers: HeaderList | None) -> Lane:
    """Only the lane: the cheapest routing decision (HeaderError if missing/unknown)."""
    for key, value in headers or ():
        if key == "rspp_lane":
            raw = value.encode() if isinstance(value, str) else value
            lane = _LANE_BY_BYTES.get(raw) if raw is not None else None
            if lane is None:
                raise HeaderError(f"header rspp_lane has unknown value {value!r:.40}")
            return lane
    raise HeaderError("missing header rspp_lane")
