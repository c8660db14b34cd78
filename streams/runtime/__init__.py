"""The stream runtime: turn lifecycle, cancel fencing, leases, egress and the processor."""

from __future__ import annotations

from streams.runtime.errors import FencedError, LifecycleError, ProcessorError
from streams.runtime.fencing import CancelFence, Scope
from streams.runtime.lifecycle import Marker, TurnState, first_violation, next_markers_to_close

__all__ = [
    "CancelFence",
    "FencedError",
    "LifecycleError",
    "Marker",
    "ProcessorError",
    "Scope",
    "TurnState",
    "first_violation",
    "next_markers_to_close",
]
