"""Transport adapters: how a voice transport (a LiveKit room, a SIP call, a test harness)
maps its session open/close, audio in/out and barge-in onto RSPP's lanes and log.

:class:`RuntimeAdapterPlugin` is the guide's extension point; the in-process
:class:`ReferenceAdapter` is the one the demo and tests use.
"""

from __future__ import annotations

from streams.adapters.base import (
    AdapterConfig,
    AdapterError,
    RuntimeAdapter,
    RuntimeAdapterPlugin,
    TransportContract,
)
from streams.adapters.follower import LogFollower, SessionView, TurnView
from streams.adapters.reference import ReferenceAdapter, ReferenceAdapterPlugin

__all__ = [
    "AdapterConfig",
    "AdapterError",
    "LogFollower",
    "ReferenceAdapter",
    "ReferenceAdapterPlugin",
    "RuntimeAdapter",
    "RuntimeAdapterPlugin",
    "SessionView",
    "TransportContract",
    "TurnView",
]
