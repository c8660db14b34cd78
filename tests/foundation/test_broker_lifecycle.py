"""`rspp broker up` twice starts one broker; `--fresh` starts an empty one; `down` leaves no
process behind."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from streams.broker import BrokerConfig, LocalBroker
from streams.config import external_bootstrap
from streams.errors import BrokerError
from streams.topics import TopicLayout, TopicRole, apply_topics, topic_names
from tests.ports import free_port_pair

# Every test here starts private brokers from the Maven jars (JDK needed). With RSPP_BOOTSTRAP
# the suite runs against an external cluster on a machine that may have no JDK, so there is
# nothing local to start; .ci/run never sets it, so CI always runs these.
pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.skipif(
        external_bootstrap() is not None,
        reason="RSPP_BOOTSTRAP set: this machine runs no local broker",
    ),
]


def test_up_twice_is_one_broker_fresh_starts_empty_and_down_stops_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # kafka_bootstrap ensures the shared jar cache exists; this broker gets its own port and a
    # private state dir (the jars are linked in, not resolved again).
    shared = LocalBroker(BrokerConfig()).ensure_jars().parent
    (tmp_path / shared.name).symlink_to(shared)
    broker = LocalBroker(BrokerConfig(port=free_port_pair(), heap="256m", home=tmp_path))
    try:
        first = broker.up(timeout=120)
        second = broker.up(timeout=30)
        assert first.ready and second.ready
        assert first.pid == second.pid and first.pid is not None
        assert broker.status().version == broker.config.version

        layout = TopicLayout(prefix="fresh-check", partitions=3)
        apply_topics(first.bootstrap, layout)
        # The broker makes partition dirs a moment after metadata shows their leaders.
        deadline = time.monotonic() + 30
        while broker.status().partitions_on_disk < 3 * len(TopicRole):
            assert time.monotonic() < deadline, broker.status()
            time.sleep(0.2)
        # --fresh: a new process and none of the old topics (what CI starts from).
        fresh = broker.up(timeout=120, fresh=True)
        assert fresh.ready and fresh.pid not in (None, first.pid)
        assert topic_names(fresh.bootstrap, starts_with="fresh-check.") == []
        assert fresh.partitions_on_disk < 3 * len(TopicRole)
    finally:
        stopped = broker.down()
    assert stopped
    for pid in (first.pid, fresh.pid):
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not broker.status().running


def test_a_broker_that_dies_at_start_says_why(kafka_bootstrap: str, tmp_path: Path) -> None:
    shared = LocalBroker(BrokerConfig()).ensure_jars().parent
    (tmp_path / shared.name).symlink_to(shared)
    broker = LocalBroker(BrokerConfig(port=free_port_pair(), heap="256m", home=tmp_path))
    with socket.socket() as squatter:  # someone holds the controller port
        squatter.bind(("127.0.0.1", broker.config.effective_controller_port))
        squatter.listen()
        try:
            with pytest.raises(BrokerError, match="Address already in use"):
                broker.up(timeout=60)
        finally:
            broker.down()
