"""Typed events ⇄ the plain records fastavro encodes (internal to the codec).

Converters are built once per payload class at import, so the hot path is an
``attrgetter`` and a ``dict(zip(...))`` per record. The payload union is written
in fastavro's tuple notation ``(record name, record)`` so the writer picks the
branch by name instead of trying every branch.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import fields
from enum import StrEnum
from operator import attrgetter
from typing import Any

from streams.abi.events import (
    PAYLOAD_TYPES,
    Correlation,
    DeadLetter,
    Envelope,
    EventType,
    Header,
    Lane,
    Payload,
)

__all__ = ["envelope_from_record", "envelope_to_record"]

Record = dict[str, Any]

_LANES: dict[str, Lane] = {lane.value: lane for lane in Lane}
_EVENT_TYPES: dict[str, EventType] = {et.value: et for et in EventType}


def _build_to_record(cls: type[Payload]) -> Callable[[Payload], Record]:
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    if cls is DeadLetter:

        def dead_letter(p: Payload) -> Record:
            assert isinstance(p, DeadLetter)
            return {
                "reason": p.reason,
                "original_topic": p.original_topic,
                "original_partition": p.original_partition,
                "original_offset": p.original_offset,
                "original_bytes": p.original_bytes,
                "original_headers": [{"key": h.key, "value": h.value} for h in p.original_headers],
            }

        return dead_letter
    if len(names) == 1:
        (only,) = names
        return lambda p: {only: getattr(p, only)}
    getter = attrgetter(*names)
    return lambda p: dict(zip(names, getter(p), strict=True))


def _build_from_record(cls: type[Payload]) -> Callable[[Record], Payload]:
    hints = typing.get_type_hints(cls)
    enums = tuple(
        (name, {m.value: m for m in hint})
        for name, hint in hints.items()
        if isinstance(hint, type) and issubclass(hint, StrEnum)
    )
    if cls is DeadLetter:

        def dead_letter(r: Record) -> Payload:
            r["original_headers"] = tuple(Header(**h) for h in r["original_headers"])
            return DeadLetter(**r)

        return dead_letter
    if not enums:
        return lambda r: cls(**r)

    def with_enums(r: Record) -> Payload:
        for name, members in enums:
            r[name] = members[r[name]]
        return cls(**r)

    return with_enums


_TO_RECORD: dict[type[Payload], Callable[[Payload], Record]] = {
    cls: _build_to_record(cls) for cls in PAYLOAD_TYPES.values()
}
_FROM_RECORD: dict[str, Callable[[Record], Payload]] = {
    name: _build_from_record(cls) for name, cls in PAYLOAD_TYPES.items()
}


def envelope_to_record(event: Envelope) -> Record:
    payload = event.payload
    corr = event.correlation
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "lane": event.lane,
        "tenant_id": event.tenant_id,
        "session_id": event.session_id,
        "turn_id": event.turn_id,
        "correlation": {
            "correlation_id": corr.correlation_id,
            "causation_id": corr.causation_id,
            "trace_id": corr.trace_id,
        },
        "lease_epoch": event.lease_epoch,
        "bundle_id": event.bundle_id,
        "plan_hash": event.plan_hash,
        "node_id": event.node_id,
        "seq": event.seq,
        "ts": event.ts,
        "payload": (payload.AVRO_NAME, _TO_RECORD[type(payload)](payload)),
    }


def envelope_from_record(record: Record) -> Envelope:
    """Inverse of :func:`envelope_to_record`; ``payload`` is fastavro's ``(name, record)``."""
    name, body = record["payload"]
    corr = record["correlation"]
    return Envelope(
        event_id=record["event_id"],
        event_type=_EVENT_TYPES[record["event_type"]],
        lane=_LANES[record["lane"]],
        tenant_id=record["tenant_id"],
        session_id=record["session_id"],
        turn_id=record["turn_id"],
        correlation=Correlation(
            correlation_id=corr["correlation_id"],
            causation_id=corr["causation_id"],
            trace_id=corr["trace_id"],
        ),
        lease_epoch=record["lease_epoch"],
        bundle_id=record["bundle_id"],
        plan_hash=record["plan_hash"],
        node_id=record["node_id"],
        seq=record["seq"],
        ts=record["ts"],
        payload=_FROM_RECORD[name](body),
    )
