"""The project-managed local Apache Kafka broker (KRaft, jars from Maven Central)."""

from __future__ import annotations

from streams.broker.local import BrokerConfig, BrokerStatus, LocalBroker, wait_until_ready
from streams.broker.secure import BrokerCredentials

__all__ = ["BrokerConfig", "BrokerCredentials", "BrokerStatus", "LocalBroker", "wait_until_ready"]
