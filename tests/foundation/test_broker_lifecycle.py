"""`rspp broker up` twice starts one broker; `down` leaves no process behind."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from streams.broker import BrokerConfig, LocalBroker
from streams.config import external_bootstrap

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
        with socket.socket() as b:
            if b.connect_ex(("127.0.0.1", port + 1)) != 0:
                return port
    raise RuntimeError("no free port pair")


@pytest.mark.skipif(
    external_bootstrap() is not None, reason="RSPP_BOOTSTRAP set: this machine runs no local broker"
)
def test_up_twice_is_one_broker_and_down_stops_it(kafka_bootstrap: str, tmp_path: Path) -> None:
    # kafka_bootstrap ensures the shared jar cache exists; this broker gets its own port and a
    # private state dir (the jars are linked in, not resolved again).
    shared = LocalBroker(BrokerConfig()).ensure_jars().parent
    (tmp_path / shared.name).symlink_to(shared)
    broker = LocalBroker(BrokerConfig(port=_free_port_pair(), heap="256m", home=tmp_path))
    try:
        first = broker.up(timeout=120)
        second = broker.up(timeout=30)
        assert first.ready and second.ready
        assert first.pid == second.pid and first.pid is not None
        assert broker.status().version == broker.config.version
    finally:
        stopped = broker.down()
    assert stopped
    assert first.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(first.pid, 0)
    assert not broker.status().running
