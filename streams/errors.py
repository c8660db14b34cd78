"""Errors raised by the Kafka runtime. Every one derives from :class:`StreamsError`."""

from __future__ import annotations

__all__ = ["BrokerError", "KafkaConfigError", "StreamsError", "TopicLayoutError"]


class StreamsError(Exception):
    """Root of every error raised by :mod:`streams`."""


class BrokerError(StreamsError):
    """The local broker could not be resolved, started, stopped or reached."""


class TopicLayoutError(StreamsError):
    """Topics for a prefix are missing, inconsistent, or could not be created."""


class KafkaConfigError(StreamsError):
    """Kafka client settings (security variables, credentials) are missing or inconsistent."""
