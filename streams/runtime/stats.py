"""Counters the engine and processor keep (printed by `rspp run`, asserted by tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EngineStats"]


@dataclass(slots=True)
class EngineStats:
    events_in: int = 0
    turns_opened: int = 0
    turns_committed: int = 0
    turns_aborted: int = 0
    outputs: int = 0
    cancels: int = 0
    sessions_admitted: int = 0
    sessions_rejected: int = 0
    deferred: int = 0
    shed: int = 0
    fence_latency_ms: list[float] = field(default_factory=list)
