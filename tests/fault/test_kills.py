"""SIGKILL the processor at random points, restart it, and lose nothing.

Two ``rspp run`` subprocesses in one group (static membership, so a restart
with the same ``--id`` takes its partitions straight back) serve text traffic on
eight sessions. Every ~0.3–1.5 s one of them is SIGKILLed — mid-turn and
mid-transaction (commits run every 100 ms), and sometimes within moments of its
restart, while it is still joining the group — and started again. Afterwards
the log must account for every event the voice service sent, with no record
twice, sound lifecycles, monotone epochs, and a clean replay.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.abi import events as ev
from streams.testing import read_log
from streams.topics import TopicLayout, apply_topics
from tests.fault.harness import ProcessorProc, Traffic, processors, verify, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 4


def kill_campaign(
    *,
    bootstrap: str,
    prefix: str,
    workdir: Path,
    kills: int,
    seed: int,
    slots: int = 2,
    rate_per_s: float = 25.0,
    sessions: int = 8,
) -> tuple[Traffic, list[ProcessorProc], int]:
    """Run traffic while killing processors; returns the traffic, the slots and the kills done."""
    rng = random.Random(seed)
    apply_topics(bootstrap, TopicLayout(prefix=prefix, partitions=PARTITIONS))
    procs = [
        ProcessorProc(
            bootstrap=bootstrap,
            prefix=prefix,
            holder=f"k{n}",
            workdir=workdir,
            partitions=PARTITIONS,
            session_timeout_ms=6000,
            static=True,
        )
        for n in range(slots)
    ]
    traffic = Traffic(bootstrap=bootstrap, prefix=prefix, sessions=sessions, seed=seed)
    done = 0
    with processors(procs):
        for p in procs:
            p.start()
        traffic.run_in_background(rate_per_s)
        for _ in range(kills):
            victim = rng.choice(procs)
            # Mostly a while into its life (mid-turn, mid-transaction); sometimes at once,
            # while it is still joining the group and restoring its sessions.
            time.sleep(rng.uniform(0.05, 0.3) if rng.random() < 0.25 else rng.uniform(0.3, 1.5))
            victim.sample_rss()
            victim.kill()
            done += 1
            victim.start()
        traffic.stop()
        for p in procs:
            assert p.alive, f"{p.holder} died on its own:\n{p.stderr()[-2000:]}"
        # Let the survivors finish the backlog, then drain them with SIGTERM.
        wait_for(
            lambda: _all_closed(bootstrap, prefix, traffic),
            60,
            "every session's SESSION_CLOSE in the log",
            every=1.0,
        )
        for p in procs:
            assert p.stop() == 0, p.stderr()[-2000:]
    return traffic, procs, done


def _all_closed(bootstrap: str, prefix: str, traffic: Traffic) -> bool:
    closes = {
        r.event.session_id
        for r in read_log(bootstrap, prefix, partitions=PARTITIONS)
        if r.event.event_type is ev.EventType.SESSION_CLOSE
    }
    return set(traffic.sent.values()) <= closes


def test_twenty_kills_lose_and_duplicate_nothing(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    prefix = unique_prefix()
    traffic, procs, kills = kill_campaign(
        bootstrap=kafka_bootstrap, prefix=prefix, workdir=tmp_path, kills=20, seed=11
    )
    assert kills == 20
    acc = verify(kafka_bootstrap, prefix, partitions=PARTITIONS, sent=traffic.sent)
    assert acc.sent > 200
    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    grants = [r.event.payload for r in rows if isinstance(r.event.payload, ev.LeaseGranted)]
    # Restarts took new epochs on the partitions they got back (a victim killed before its
    # assignment arrived takes none, so there are fewer grants than kills).
    assert len(grants) > PARTITIONS
    # Kills landed mid-turn: turns in flight were closed by the partition's next owner.
    failovers = [
        r
        for r in rows
        if isinstance(r.event.payload, ev.TurnAbort) and r.event.payload.reason == "failover"
    ]
    assert failovers
    assert any(r.event.event_type is ev.EventType.TURN_COMMIT for r in rows)
    assert sum(p.starts for p in procs) == len(procs) + kills
