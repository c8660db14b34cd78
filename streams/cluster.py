"""Which Kafka cluster a command talks to: RSPP_BOOTSTRAP, or the local broker."""

from __future__ import annotations

from streams.broker import BrokerConfig, LocalBroker, wait_until_ready
from streams.config import (
    connect_timeout_cap,
    external_bootstrap,
    kafka_credentials_from_env,
    kafka_version,
    local_broker_port,
)
from streams.errors import BrokerError

__all__ = ["resolve_bootstrap"]


def resolve_bootstrap(
    explicit: str | None = None, *, start_local: bool = False, timeout: float = 90.0
) -> str:
    """Return a bootstrap address that answers a metadata call.

    Order: an explicit ``--bootstrap``, then ``RSPP_BOOTSTRAP``, then the local
    broker (started first when ``start_local``; otherwise it must be running).
    """
    cap = connect_timeout_cap()
    timeout = timeout if cap is None else min(timeout, cap)
    address = explicit or external_bootstrap()
    if address is not None:
        wait_until_ready(address, timeout=timeout)
        return address
    broker = LocalBroker(BrokerConfig(port=local_broker_port(), version=kafka_version()))
    creds = broker.credentials()
    if creds is not None:
        if kafka_credentials_from_env() is None:
            raise BrokerError(
                f"the local broker at {broker.config.bootstrap} is secured: connect as one of "
                "its users, e.g. `eval \"$(rspp broker credentials --user admin)\"`"
            )
        # Started with --secure: keep it so (a plain start would be refused).
        broker = LocalBroker(
            BrokerConfig(
                port=broker.config.port,
                version=broker.config.version,
                secure=True,
                processor_user=creds.processor,
            )
        )
    if start_local:
        return broker.up(timeout=timeout).bootstrap
    wait_until_ready(broker.config.bootstrap, timeout=min(timeout, 5.0))
    return broker.config.bootstrap
