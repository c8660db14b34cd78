"""Result values of a replay: positions, divergences, per-turn and whole-log results.

All frozen, slotted and keyword-only: results cross threads and processes (CI
reports) and must not be edited after the engine produced them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

__all__ = [
    "CHECK_ORDER",
    "Divergence",
    "DivergenceKind",
    "Position",
    "ReplayResult",
    "TurnResult",
]


class DivergenceKind(StrEnum):
    """One per check, in the order the checks run for a turn."""

    EVIDENCE = "evidence_completeness"
    LIFECYCLE = "lifecycle_order"
    SEQUENCE = "sequence"
    EPOCH = "epoch_fencing"
    PLAN_HASH = "plan_hash"
    BUNDLE_PINNING = "bundle_pinning"
    PLAN_CHANGE = "plan_change"
    CANCEL = "cancel_fencing"
    CORRELATION = "correlation_chain"
    DUPLICATE = "duplicate_output"
    OUTPUT = "output_diff"
    TIMING = "timing"


CHECK_ORDER: dict[DivergenceKind, int] = {kind: i for i, kind in enumerate(DivergenceKind)}


class Position(NamedTuple):
    """Where a record sits: topic partition + offset, or container file + record index.

    A NamedTuple rather than a dataclass: one is made per record on the hot path,
    and tuple construction is several times cheaper than a frozen dataclass's.
    """

    source: str
    partition: int
    offset: int
    in_file: bool = False

    def __str__(self) -> str:
        if self.in_file:
            return f"{self.source}#{self.offset}"
        return f"{self.source}[{self.partition}]@{self.offset}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Divergence:
    """One contradiction between the log and the rules (or the re-executed code).

    ``expected`` is what the log rules / the recording say; ``actual`` is what
    replay found or computed. ``diff`` is a readable text diff when both are text.
    """

    kind: DivergenceKind
    session_id: str
    turn_id: str | None
    position: Position | None
    node_id: str | None
    expected: str
    actual: str
    message: str
    diff: str | None = None
    skew_ms: float | None = None  # timing: how far the clock went back

    def one_line(self) -> str:
        where = str(self.position) if self.position is not None else "end of log"
        turn = f" turn {self.turn_id}" if self.turn_id else ""
        node = f" node {self.node_id}" if self.node_id else ""
        return f"{self.kind.value}: session {self.session_id}{turn}{node} at {where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        pos = self.position
        out: dict[str, Any] = {
            "kind": self.kind.value,
            "session_id": self.session_id,
            "turn_id": self.turn_id,
            "position": None if pos is None else {
                "source": pos.source, "partition": pos.partition, "offset": pos.offset,
                "in_file": pos.in_file, "text": str(pos),
            },
            "node_id": self.node_id,
            "expected": self.expected,
            "actual": self.actual,
            "message": self.message,
            "diff": self.diff,
        }
        if self.skew_ms is not None:
            out["skew_ms"] = self.skew_ms
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnResult:
    """Checks of one turn (``turn_id`` None: session-level events outside any turn).

    ``tolerated`` divergences are within the replay policy's tolerances: reported,
    never failing.
    """

    session_id: str
    turn_id: str | None
    tenant_id: str
    events: int
    outcome: str | None
    divergences: tuple[Divergence, ...] = ()
    tolerated: tuple[Divergence, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.divergences

    @property
    def name(self) -> str:
        return self.turn_id if self.turn_id is not None else f"session:{self.session_id}"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "session_id": self.session_id,
            "turn_id": self.turn_id,
            "tenant_id": self.tenant_id,
            "events": self.events,
            "outcome": self.outcome,
            "ok": self.ok,
            "divergences": [d.to_dict() for d in self.divergences],
        }
        if self.tolerated:
            out["tolerated"] = [d.to_dict() for d in self.tolerated]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    """The whole replay: every turn result plus throughput.

    ``integrity`` lists what is wrong with the evidence itself (an export that
    is unverified, incomplete, duplicated, foreign or not signed as required);
    any entry fails the replay like a divergence does.
    """

    turns: tuple[TurnResult, ...]
    events: int
    seconds: float
    mode: str
    source: str
    bundle: str | None = None
    notes: tuple[str, ...] = field(default=())
    integrity: tuple[str, ...] = field(default=())

    @property
    def divergences(self) -> tuple[Divergence, ...]:
        return tuple(d for t in self.turns for d in t.divergences)

    @property
    def tolerated(self) -> tuple[Divergence, ...]:
        return tuple(d for t in self.turns for d in t.tolerated)

    @property
    def ok(self) -> bool:
        return not self.integrity and all(t.ok for t in self.turns)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def raise_on_divergence(self) -> None:
        """Raise :class:`replay.errors.DivergenceError` unless every turn is clean."""
        if not self.ok:
            from replay.errors import DivergenceError

            raise DivergenceError(self)

    def to_dict(self, *, timing: bool = True) -> dict[str, Any]:
        turns = [t for t in self.turns if t.turn_id is not None]
        summary: dict[str, Any] = {
            "mode": self.mode,
            "source": self.source,
            "bundle": self.bundle,
            "events": self.events,
            "turns": len(turns),
            "turns_diverged": sum(1 for t in turns if not t.ok),
            "divergences": len(self.divergences),
            "integrity_problems": len(self.integrity),
            "ok": self.ok,
        }
        if self.tolerated:
            summary["tolerated"] = len(self.tolerated)
        if timing:
            summary["seconds"] = round(self.seconds, 6)
            summary["events_per_second"] = round(self.events_per_second, 1)
        return {
            "summary": summary,
            "notes": list(self.notes),
            "integrity": list(self.integrity),
            "turns": [t.to_dict() for t in self.turns],
        }
