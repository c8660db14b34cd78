"""A paused processor (SIGSTOP past the session timeout) wakes up as a zombie.

Its partitions have moved to the other processor, which took new lease epochs.
When it resumes (SIGCONT) it still believes it owns them and has a transaction
open with records at the old epochs: the broker must refuse that transaction
(the zombie's group generation is stale), the zombie must stop, and no record
at a superseded epoch may appear in the log.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from streams.abi import events as ev
from streams.testing import read_log
from streams.topics import TopicLayout, apply_topics
from tests.fault.harness import ProcessorProc, Traffic, processors, verify, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 4


def _grants(bootstrap: str, prefix: str) -> list[ev.LeaseGranted]:
    try:
        rows = read_log(bootstrap, prefix, partitions=PARTITIONS)
    except KafkaException:
        return []
    return [r.event.payload for r in rows if isinstance(r.event.payload, ev.LeaseGranted)]


def test_paused_processor_is_fenced_and_stops(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=PARTITIONS))
    zombie, heir = (
        ProcessorProc(
            bootstrap=kafka_bootstrap,
            prefix=prefix,
            holder=name,
            workdir=tmp_path,
            partitions=PARTITIONS,
            session_timeout_ms=6000,
        )
        for name in ("zombie", "heir")
    )
    traffic = Traffic(bootstrap=kafka_bootstrap, prefix=prefix, sessions=8, seed=3)
    with processors([zombie, heir]):
        zombie.start()
        traffic.run_in_background(20.0, rotate_every=0)
        wait_for(
            lambda: len({g.partition for g in _grants(kafka_bootstrap, prefix)}) == PARTITIONS,
            30,
            "the zombie to hold every partition",
        )
        heir.start()
        wait_for(
            lambda: any(g.holder == "heir" for g in _grants(kafka_bootstrap, prefix)),
            30,
            "the heir to share the partitions",
        )
        zombie_parts = {
            g.partition for g in _grants(kafka_bootstrap, prefix) if g.holder == "zombie"
        }
        # Work in flight on the zombie's partitions, then freeze it mid-transaction.
        wait_for(lambda: zombie.sample_rss() is not None, 5, "the zombie to be alive")
        zombie.signal(signal.SIGSTOP)
        epoch_at_pause = {g.partition: g.epoch for g in _grants(kafka_bootstrap, prefix)}

        def heir_took_over() -> bool:
            newer = {
                g.partition
                for g in _grants(kafka_bootstrap, prefix)
                if g.holder == "heir" and g.epoch > epoch_at_pause[g.partition]
            }
            return newer >= zombie_parts

        wait_for(
            heir_took_over,
            40,
            "the heir to take the zombie's partitions after the session timeout",
            every=0.5,
        )
        zombie.signal(signal.SIGCONT)
        code = zombie.wait_exit(60)
        traffic.stop()
        acc = verify(kafka_bootstrap, prefix, partitions=PARTITIONS, sent=traffic.sent, settle_s=60)
        assert heir.stop() == 0, heir.stderr()[-2000:]
    assert code != 0, "the zombie kept running after it was fenced"
    assert "fenced" in zombie.stderr().lower(), zombie.stderr()[-2000:]
    assert acc.sent > 50
