"""Shed decisions: what a full lane dropped, by which rule, ready to become a Shed event."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.lanes.config import ShedPolicy
from streams.lanes.records import LaneRecord, RecordPosition
from streams.topics import Lane

__all__ = ["ShedDecision", "decisions_for"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShedDecision:
    """Records of one session and lane dropped together under one rule.

    ``offsets`` are the dropped records' positions, in the order they were
    queued; the offset tracker counts them as handled so they are committed,
    and the Shed event on the log names them so nothing is lost silently.
    """

    lane: Lane
    session: str
    rule: str
    defaulting_source: str
    count: int
    offsets: tuple[RecordPosition, ...]
    tenant: str = ""  # as LaneRecord.tenant


def decisions_for(policy: ShedPolicy, shed: Iterable[LaneRecord]) -> tuple[ShedDecision, ...]:
    """Group shed records by (lane, tenant, session) in first-seen order, so equal input
    gives equal output (no dict-of-set iteration order involved)."""
    groups: dict[tuple[Lane, str, str], list[RecordPosition]] = {}
    for record in shed:
        groups.setdefault((record.lane, record.tenant, record.session), []).append(record.position)
    return tuple(
        ShedDecision(
            lane=lane,
            tenant=tenant,
            session=session,
            rule=policy.rule,
            defaulting_source=policy.defaulting_source,
            count=len(positions),
            offsets=tuple(positions),
        )
        for (lane, tenant, session), positions in groups.items()
    )
