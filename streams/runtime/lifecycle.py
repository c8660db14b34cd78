"""The turn lifecycle as a pure state machine (docs/architecture.md, invariants 4–6).

An accepted turn is exactly ``OPEN → ACTIVE → (COMMIT | ABORT) → CLOSE``.
Admission outcomes (admit/reject/defer) happen before a turn and are not
markers. The same rules serve the runtime (which refuses to emit a bad step)
and replay (which reports a recorded bad step as a divergence).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from streams.runtime.errors import LifecycleError

__all__ = ["Marker", "TurnState", "first_violation", "next_markers_to_close"]


class Marker(StrEnum):
    OPEN = "OPEN"
    ACTIVE = "ACTIVE"
    COMMIT = "COMMIT"
    ABORT = "ABORT"
    CLOSE = "CLOSE"


# What may follow each marker; None = nothing seen yet for the turn.
_NEXT: dict[Marker | None, frozenset[Marker]] = {
    None: frozenset({Marker.OPEN}),
    Marker.OPEN: frozenset({Marker.ACTIVE}),
    Marker.ACTIVE: frozenset({Marker.COMMIT, Marker.ABORT}),
    Marker.COMMIT: frozenset({Marker.CLOSE}),
    Marker.ABORT: frozenset({Marker.CLOSE}),
    Marker.CLOSE: frozenset(),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnState:
    """One turn's position in its lifecycle plus the facts frozen at OPEN."""

    turn_id: str
    session_id: str
    plan_hash: str
    lease_epoch: int
    last: Marker | None = None
    abort_reason: str | None = None

    @property
    def is_open(self) -> bool:
        """True between OPEN and CLOSE."""
        return self.last is not None and self.last is not Marker.CLOSE

    @property
    def is_terminal(self) -> bool:
        """True once COMMIT or ABORT has been recorded (CLOSE may still follow)."""
        return self.last in (Marker.COMMIT, Marker.ABORT, Marker.CLOSE)

    def advance(self, marker: Marker, *, reason: str | None = None) -> TurnState:
        """The state after ``marker``; raises :class:`LifecycleError` on a bad step."""
        if marker not in _NEXT[self.last]:
            raise LifecycleError(
                turn_id=self.turn_id,
                have=None if self.last is None else self.last.value,
                got=marker.value,
            )
        return replace(
            self, last=marker, abort_reason=reason if marker is Marker.ABORT else self.abort_reason
        )


def next_markers_to_close(state: TurnState) -> tuple[Marker, ...]:
    """Markers that end ``state`` as an abort (used on cancel, drain and fail-over)."""
    if state.last is None or state.last is Marker.CLOSE:
        return ()
    if state.last is Marker.OPEN:
        return (Marker.ACTIVE, Marker.ABORT, Marker.CLOSE)
    if state.last is Marker.ACTIVE:
        return (Marker.ABORT, Marker.CLOSE)
    return (Marker.CLOSE,)


def first_violation(
    markers: Iterable[Marker], *, require_closed: bool = True
) -> tuple[int, str] | None:
    """Check a recorded marker sequence of one turn.

    Returns ``(index, message)`` of the first bad step, or ``None`` when the
    sequence is a valid lifecycle (and, with ``require_closed``, a complete one).
    """
    last: Marker | None = None
    index = -1
    for index, marker in enumerate(markers):
        if marker not in _NEXT[last]:
            after = f"after {last.value}" if last is not None else "before OPEN"
            return index, f"{marker.value} {after}"
        last = marker
    if require_closed and last is not Marker.CLOSE:
        where = "no markers" if last is None else f"ends at {last.value}"
        return index + 1, f"turn not closed ({where})"
    return None
