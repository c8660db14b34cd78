"""The Kafka runtime of RSPP: broker management, topics, lanes, codec, processor."""

from __future__ import annotations

from streams.errors import BrokerError, StreamsError, TopicLayoutError
from streams.topics import Lane, TopicLayout, TopicRole, apply_topics, describe_topics

__all__ = [
    "BrokerError",
    "Lane",
    "StreamsError",
    "TopicLayout",
    "TopicLayoutError",
    "TopicRole",
    "apply_topics",
    "describe_topics",
]
