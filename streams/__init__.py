"""The Kafka runtime of RSPP: broker management, topics, lanes, codec, processor."""

from __future__ import annotations

from streams.acls import apply_acls
from streams.config import KafkaCredentials, kafka_settings
from streams.errors import BrokerError, KafkaConfigError, StreamsError, TopicLayoutError
from streams.topics import Lane, TopicLayout, TopicRole, apply_topics, describe_topics

__all__ = [
    "BrokerError",
    "KafkaConfigError",
    "KafkaCredentials",
    "Lane",
    "StreamsError",
    "TopicLayout",
    "TopicLayoutError",
    "TopicRole",
    "apply_acls",
    "apply_topics",
    "describe_topics",
    "kafka_settings",
]
