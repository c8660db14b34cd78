"""Process-wide settings read from the environment (the edges of the runtime).

``RSPP_BOOTSTRAP``        use this Kafka cluster; start no local broker.
``RSPP_HOME``             cache and state root (jars, broker data); default ~/.cache/rspp.
``RSPP_BROKER_PORT``      port of the local broker; default 9092.
``RSPP_KAFKA_VERSION``    Apache Kafka version resolved from Maven Central.
``RSPP_SCHEMA_REGISTRY_URL``  a Confluent Schema Registry; default is the file registry.
"""

from __future__ import annotations

import os
from pathlib import Path

from streams.errors import StreamsError

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "connect_timeout_cap",
    "external_bootstrap",
    "kafka_version",
    "local_broker_port",
    "repo_root",
    "rspp_home",
]

DEFAULT_KAFKA_VERSION = "4.1.1"


def rspp_home() -> Path:
    """Root of RSPP's caches and local state."""
    env = os.environ.get("RSPP_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rspp"


def external_bootstrap() -> str | None:
    """The external cluster named by ``RSPP_BOOTSTRAP``, if any."""
    value = os.environ.get("RSPP_BOOTSTRAP", "").strip()
    return value or None


def connect_timeout_cap() -> float | None:
    """``RSPP_CONNECT_TIMEOUT_S``: the longest any command waits for a broker to answer
    (scripts and tests that expect an unreachable one); None when unset."""
    raw = os.environ.get("RSPP_CONNECT_TIMEOUT_S", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise StreamsError(f"RSPP_CONNECT_TIMEOUT_S={raw!r}: expected a positive number of seconds")
    return value


def local_broker_port() -> int:
    """Port of the project-managed local broker."""
    return int(os.environ.get("RSPP_BROKER_PORT", "9092"))


def kafka_version() -> str:
    return os.environ.get("RSPP_KAFKA_VERSION", DEFAULT_KAFKA_VERSION)


def repo_root() -> Path:
    """The source tree (holds ``avro/`` and ``pipelines/``); RSPP is installed editable."""
    return Path(__file__).resolve().parent.parent
