"""Errors raised by :mod:`streams.lanes`; all derive from :class:`LanesError`."""

from __future__ import annotations

from streams.errors import StreamsError

__all__ = ["IngressError", "LaneConfigError", "LanesError"]


class LanesError(StreamsError):
    """Root of every error raised by the lane runtime."""


class LaneConfigError(LanesError):
    """A lane, weight, prefetch or shed setting is out of range or inconsistent."""


class IngressError(LanesError):
    """The ingress consumer(s) hit a fatal Kafka error (names topic/partition when known)."""
