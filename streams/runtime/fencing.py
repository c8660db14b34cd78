"""Cancel fencing (docs/architecture.md, invariants 10–11).

Once a Cancel for a scope has been processed, no ``OutputAccepted`` or
``PlaybackStarted`` for anything inside that scope may be appended — not even
output that was already computed or sitting in a buffer. The fence is the one
place egress asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["CancelFence", "Scope"]


class Scope(StrEnum):
    SESSION = "SESSION"
    TURN = "TURN"
    NODE = "NODE"


@dataclass(slots=True)
class CancelFence:
    """Cancelled scopes of one session; checked before every egress append."""

    session_cancelled: bool = False
    turns: set[str] = field(default_factory=set)
    nodes: set[tuple[str, str]] = field(default_factory=set)

    def cancel(
        self, scope: Scope, *, turn_id: str | None = None, node_id: str | None = None
    ) -> None:
        """Record a processed Cancel. Node scope needs the turn it applies to."""
        if scope is Scope.SESSION:
            self.session_cancelled = True
        elif scope is Scope.TURN:
            if turn_id is None:
                raise ValueError("a TURN cancel needs turn_id")
            self.turns.add(turn_id)
        else:
            if turn_id is None or node_id is None:
                raise ValueError("a NODE cancel needs turn_id and node_id")
            self.nodes.add((turn_id, node_id))

    def blocks(self, *, turn_id: str | None, node_id: str | None = None) -> bool:
        """True when output of ``node_id`` in ``turn_id`` must not reach egress."""
        if self.session_cancelled:
            return True
        if turn_id is None:
            return False
        if turn_id in self.turns:
            return True
        return node_id is not None and (turn_id, node_id) in self.nodes

    def turn_opened(self) -> None:
        """A session cancel ends the work in flight, not the session: a turn opened after it
        is not fenced (the runtime and replay both call this at TURN_OPEN)."""
        self.session_cancelled = False

    def forget_turn(self, turn_id: str) -> None:
        """Drop per-turn entries once the turn is closed (its outputs can no longer arrive)."""
        self.turns.discard(turn_id)
        self.nodes = {n for n in self.nodes if n[0] != turn_id}
