"""The broker goes away for a few seconds under load; the processor rides it out.

A private single-node KRaft broker (its own ports and state dir; the shared jar
cache linked in, never the shared broker on 9092) serves one ``rspp run``
subprocess and a voice service sending text turns and barge-ins. Mid-run the
broker is stopped (SIGTERM, clean shutdown), kept down for a few seconds and
started again on the same state dir. The processor must still be the same
process afterwards, keep serving new turns without any manual action, and the
log must account for every event sent — before, during and after the outage —
with none twice, a sound lifecycle and a clean replay.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from streams.abi import events as ev
from streams.broker import BrokerConfig, LocalBroker
from streams.testing import read_log
from streams.topics import TopicLayout, apply_topics
from tests.fault.harness import ProcessorProc, Traffic, processors, verify, wait_for
from tests.ports import free_port_pair

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 2
OUTAGE_S = 4.0


@pytest.fixture
def private_broker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of this test alone (``kafka_bootstrap`` makes sure the jar cache exists)."""
    shared = LocalBroker(BrokerConfig()).ensure_jars().parent
    home = tmp_path / "broker-home"
    home.mkdir()
    (home / shared.name).symlink_to(shared)
    broker = LocalBroker(BrokerConfig(port=free_port_pair(), heap="256m", home=home))
    assert broker.config.port != 9092
    try:
        broker.up(timeout=90)
        yield broker
    finally:
        broker.down()


def _turns_after(bootstrap: str, prefix: str, since: float) -> int:
    """TURN_COMMITs the processor wrote after the wall-clock time ``since``."""
    try:
        rows = read_log(bootstrap, prefix, partitions=PARTITIONS)
    except KafkaException:  # leaders not elected yet (fresh topics, broker just restarted)
        return 0
    return sum(
        1
        for r in rows
        if r.event.event_type is ev.EventType.TURN_COMMIT and r.event.ts.timestamp() > since
    )


def test_processor_survives_a_broker_restart(private_broker: LocalBroker, tmp_path: Path) -> None:
    bootstrap = private_broker.config.bootstrap
    prefix = "brk-restart"
    apply_topics(bootstrap, TopicLayout(prefix=prefix, partitions=PARTITIONS))
    proc = ProcessorProc(
        bootstrap=bootstrap,
        prefix=prefix,
        holder="survivor",
        workdir=tmp_path,
        partitions=PARTITIONS,
        session_timeout_ms=10_000,
    )
    traffic = Traffic(bootstrap=bootstrap, prefix=prefix, sessions=6, seed=5)
    with processors([proc]):
        proc.start()
        traffic.run_in_background(20.0, rotate_every=40)
        wait_for(lambda: _turns_after(bootstrap, prefix, 0.0) >= 5, 45, "turns before the outage")
        proc.sample_rss()
        assert private_broker.down(), "the private broker was not running"
        down_at = time.monotonic()
        wait_for(lambda: time.monotonic() - down_at >= OUTAGE_S, OUTAGE_S + 5, "the outage")
        assert proc.alive, f"processor died while the broker was down:\n{proc.stderr()[-3000:]}"
        private_broker.up(timeout=90)
        up_wall = time.time()
        up_at = time.monotonic()
        try:
            wait_for(
                lambda: _turns_after(bootstrap, prefix, up_wall) >= 5,
                60,
                "new turns committed after the broker came back",
                every=0.5,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; processor stderr:\n{proc.stderr()[-3000:]}") from None
        recovery_s = time.monotonic() - up_at
        print(f"\nbroker restart: outage {OUTAGE_S:.0f}s, first 5 turns {recovery_s:.1f}s after up")
        assert proc.alive, f"processor exited after the restart:\n{proc.stderr()[-3000:]}"
        traffic.stop()
        acc = verify(bootstrap, prefix, partitions=PARTITIONS, sent=traffic.sent, settle_s=60)
        assert proc.stop() == 0, proc.stderr()[-3000:]
    assert proc.starts == 1, "the processor was restarted by hand"
    assert acc.sent > 100
    # The traffic closes sessions with utterances in flight: those are dead-lettered on
    # purpose. Anything else (stale epochs, undecodable input) would be a restart bug.
    expected = {"session closed before this utterance was", "session is closed or was"}
    assert set(acc.dlq_reasons) <= expected, acc.dlq_reasons
