"""Process-wide settings read from the environment (the edges of the runtime).

``RSPP_BOOTSTRAP``        use this Kafka cluster; start no local broker.
``RSPP_HOME``             cache and state root (jars, broker data); default ~/.cache/rspp.
``RSPP_BROKER_PORT``      port of the local broker; default 9092.
``RSPP_KAFKA_VERSION``    Apache Kafka version resolved from Maven Central.
``RSPP_SCHEMA_REGISTRY_URL``  a Confluent Schema Registry; default is the file registry.
``RSPP_KAFKA_SECURITY_PROTOCOL``  PLAINTEXT (default), SASL_PLAINTEXT, SASL_SSL or SSL.
``RSPP_KAFKA_SASL_MECHANISM``     SCRAM-SHA-256 (default), SCRAM-SHA-512 or PLAIN.
``RSPP_KAFKA_SASL_USERNAME`` / ``RSPP_KAFKA_SASL_PASSWORD``  the principal every client uses.

Every Kafka client RSPP builds takes its settings from :func:`kafka_settings`, so
one set of variables makes ``rspp run``, the CLI and the SDK talk to a secured cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.errors import KafkaConfigError, StreamsError

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "KafkaCredentials",
    "connect_timeout_cap",
    "external_bootstrap",
    "kafka_credentials_from_env",
    "kafka_settings",
    "kafka_version",
    "local_broker_port",
    "repo_root",
    "rspp_home",
]

DEFAULT_KAFKA_VERSION = "4.1.1"

_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")


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


@dataclass(frozen=True, kw_only=True)
class KafkaCredentials:
    """A SASL principal: who a client authenticates as."""

    username: str
    password: str
    mechanism: str = "SCRAM-SHA-256"
    protocol: str = "SASL_PLAINTEXT"

    def __post_init__(self) -> None:
        if not self.username or not self.password:
            raise KafkaConfigError("Kafka credentials need a non-empty username and password")
        if self.mechanism not in _MECHANISMS:
            raise KafkaConfigError(
                f"unknown SASL mechanism {self.mechanism!r}: use one of {', '.join(_MECHANISMS)}"
            )
        if self.protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
            raise KafkaConfigError(
                f"SASL credentials need protocol SASL_PLAINTEXT or SASL_SSL, not {self.protocol!r}"
            )

    def settings(self) -> dict[str, str]:
        """The librdkafka properties that authenticate as this principal."""
        return {
            "security.protocol": self.protocol,
            "sasl.mechanism": self.mechanism,
            "sasl.username": self.username,
            "sasl.password": self.password,
        }

    def __repr__(self) -> str:  # never print a password
        return f"KafkaCredentials(username={self.username!r}, mechanism={self.mechanism!r})"


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def kafka_credentials_from_env() -> KafkaCredentials | None:
    """The principal named by the ``RSPP_KAFKA_SASL_*`` variables, or None when unset."""
    user = _env("RSPP_KAFKA_SASL_USERNAME")
    password = os.environ.get("RSPP_KAFKA_SASL_PASSWORD", "")
    protocol = _env("RSPP_KAFKA_SECURITY_PROTOCOL").upper()
    mechanism = _env("RSPP_KAFKA_SASL_MECHANISM").upper()
    if protocol and protocol not in _PROTOCOLS:
        raise KafkaConfigError(
            f"RSPP_KAFKA_SECURITY_PROTOCOL={protocol!r}: use one of {', '.join(_PROTOCOLS)}"
        )
    if not user and not password:
        if protocol.startswith("SASL"):
            raise KafkaConfigError(
                f"RSPP_KAFKA_SECURITY_PROTOCOL={protocol} needs "
                "RSPP_KAFKA_SASL_USERNAME and RSPP_KAFKA_SASL_PASSWORD"
            )
        return None
    if not user or not password:
        missing = "RSPP_KAFKA_SASL_USERNAME" if not user else "RSPP_KAFKA_SASL_PASSWORD"
        raise KafkaConfigError(f"{missing} is not set (the other SASL variable is)")
    if protocol in ("PLAINTEXT", "SSL"):
        raise KafkaConfigError(
            f"RSPP_KAFKA_SASL_USERNAME is set but RSPP_KAFKA_SECURITY_PROTOCOL={protocol}; "
            "use SASL_PLAINTEXT or SASL_SSL"
        )
    if mechanism and mechanism not in _MECHANISMS:
        raise KafkaConfigError(
            f"RSPP_KAFKA_SASL_MECHANISM={mechanism!r}: use one of {', '.join(_MECHANISMS)}"
        )
    return KafkaCredentials(
        username=user,
        password=password,
        mechanism=mechanism or "SCRAM-SHA-256",
        protocol=protocol or "SASL_PLAINTEXT",
    )


def kafka_settings(
    bootstrap: str, *, credentials: KafkaCredentials | None = None, **overrides: Any
) -> dict[str, Any]:
    """librdkafka settings for one client: ``bootstrap.servers``, then security, then
    ``overrides`` (pass dotted keys as ``**{"group.id": g}``).

    ``credentials`` wins over the environment; without either the client connects
    as today (PLAINTEXT, or SSL when ``RSPP_KAFKA_SECURITY_PROTOCOL=SSL``).
    """
    settings: dict[str, Any] = {"bootstrap.servers": bootstrap}
    creds = credentials if credentials is not None else kafka_credentials_from_env()
    if creds is not None:
        settings.update(creds.settings())
    else:
        protocol = _env("RSPP_KAFKA_SECURITY_PROTOCOL").upper()
        if protocol and protocol != "PLAINTEXT":
            settings["security.protocol"] = protocol
    settings.update(overrides)
    return settings
