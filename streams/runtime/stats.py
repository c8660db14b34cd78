"""Counters the engine and processor keep (printed by `rspp run`, asserted by tests)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

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

    def add(self, other: EngineStats) -> None:
        """Add ``other``'s counters to these (lists are concatenated)."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
