"""Processors join and leave one group under load: nothing lost, nothing twice.

Three slots, dynamic membership: processors are added one at a time while text
traffic flows, then removed one at a time with SIGTERM (a graceful leave, so the
group rebalances at once), then re-added. Each change moves partitions; the new
owner takes a new lease epoch and closes the turns it inherits.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from streams.abi import events as ev
from streams.testing import read_log
from streams.topics import TopicLayout, apply_topics
from tests.fault.harness import ProcessorProc, Traffic, processors, verify, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 6


def _holders(bootstrap: str, prefix: str) -> list[str]:
    try:
        rows = read_log(bootstrap, prefix, partitions=PARTITIONS)
    except KafkaException:  # fresh topics: leaders may not be known yet
        return []
    return [r.event.payload.holder for r in rows if isinstance(r.event.payload, ev.LeaseGranted)]


def _holds(bootstrap: str, prefix: str, holder: str) -> bool:
    return holder in _holders(bootstrap, prefix)


def _grants_beyond(bootstrap: str, prefix: str, count: int) -> bool:
    return len(_holders(bootstrap, prefix)) > count


def test_add_and_remove_processors_under_load(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=PARTITIONS))
    procs = [
        ProcessorProc(
            bootstrap=kafka_bootstrap,
            prefix=prefix,
            holder=f"r{n}",
            workdir=tmp_path,
            partitions=PARTITIONS,
            session_timeout_ms=6000,
        )
        for n in range(3)
    ]
    traffic = Traffic(bootstrap=kafka_bootstrap, prefix=prefix, sessions=12, seed=5)
    with processors(procs):
        procs[0].start()
        traffic.run_in_background(25.0, rotate_every=40)
        wait_for(lambda: "r0" in _holders(kafka_bootstrap, prefix), 30, "r0 to hold leases")
        for p in procs[1:]:  # scale out: each join moves partitions to the newcomer
            p.start()
            wait_for(
                partial(_holds, kafka_bootstrap, prefix, p.holder),
                30,
                f"{p.holder} to take partitions",
                every=0.5,
            )
        for p in procs[:2]:  # scale in: graceful leave, partitions move to the survivors
            before = len(_holders(kafka_bootstrap, prefix))
            assert p.stop() == 0, p.stderr()[-2000:]
            wait_for(
                partial(_grants_beyond, kafka_bootstrap, prefix, before),
                30,
                f"the partitions of {p.holder} to move",
                every=0.5,
            )
        procs[0].start()  # and back out again
        wait_for(
            lambda: _holders(kafka_bootstrap, prefix).count("r0") >= 2,
            30,
            "r0 to rejoin",
            every=0.5,
        )
        traffic.stop()
        acc = verify(kafka_bootstrap, prefix, partitions=PARTITIONS, sent=traffic.sent, settle_s=60)
        for p in procs:
            if p.alive:
                assert p.stop() == 0, p.stderr()[-2000:]
    assert acc.sent > 200
    holders = _holders(kafka_bootstrap, prefix)
    assert {"r0", "r1", "r2"} <= set(holders)
    assert len(holders) > 2 * PARTITIONS  # partitions really moved, more than once
