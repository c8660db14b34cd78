"""The observability package's one root error."""

from __future__ import annotations

from streams.errors import StreamsError

__all__ = ["ObservabilityError"]


class ObservabilityError(StreamsError):
    """A metrics endpoint, lag reading or trace exporter could not be set up or read."""
