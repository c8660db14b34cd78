"""Scale-out and scale-in mid-stream: a second ``rspp run`` joins, then the first drains away.

Traffic keeps flowing the whole time. When B joins, the group rebalances and
some partitions move to B; when A gets SIGTERM it drains (finishes or aborts
its open turns, commits, leaves) and B takes the rest. Afterwards the log must
hold every sent event exactly once (or the DLQ must), sound lifecycles, and
leases that moved: per partition, epochs 1, 2, 3, … with one holder each, and B
holding every partition at the end.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from replay.logcheck import check_log
from streams.abi import events as ev
from streams.client import VoiceClient, VoiceSession
from streams.testing import read_dlq, read_log
from streams.topics import TopicLayout, apply_topics
from tests.runtime.procs import LogTail, RsppProcess, accounted

pytestmark = pytest.mark.kafka

PARTITIONS = 4
BUNDLE = Path(__file__).resolve().parents[2] / "pipelines/bundles/voice_assistant_bundle_v1.json"
UTTERANCES = ["what time is it", "play some music", "turn on the kitchen lights", "stop"]


class _Traffic:
    """Text turns round-robin over the sessions, with a barge-in now and then, until stopped."""

    def __init__(self, client: VoiceClient, sessions: list[VoiceSession]) -> None:
        self.client = client
        self.sessions = sessions
        self.sent: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="traffic", daemon=True)

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            s = self.sessions[n % len(self.sessions)]
            event = s.cancel() if n % 11 == 10 else s.send_transcript(UTTERANCES[n % 4])
            self.sent.append(event.event_id)
            n += 1
            self._stop.wait(0.025)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for s in self.sessions:
            self.sent.append(s.close().event_id)
        assert self.client.flush(30) == 0


def test_join_then_drain_moves_leases_and_loses_nothing(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=PARTITIONS))
    a, b = (
        RsppProcess(
            bootstrap=kafka_bootstrap, prefix=prefix, bundle=BUNDLE, holder=holder,
            workdir=tmp_path, partitions=PARTITIONS,
        )
        for holder in ("rb-a", "rb-b")
    )
    tail = LogTail(kafka_bootstrap, prefix, partitions=PARTITIONS)
    client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
    sessions = [VoiceSession(client=client, session_id=f"{prefix[-10:]}-s{n}") for n in range(8)]
    opens = [s.publish(ev.SessionOpen(transport="sdk", locale="en-US")).event_id for s in sessions]
    traffic = _Traffic(client, sessions)

    def commits_beyond(n: int) -> Callable[[LogTail], bool]:
        return lambda t: t.counts[ev.EventType.TURN_COMMIT] >= n

    def holders(t: LogTail) -> dict[int, str]:
        return {p: h for p, _, h in t.grants}  # the latest grant per partition

    try:
        a.start()
        tail.until(lambda t: len(t.grants) >= PARTITIONS, 30, "A's leases")
        traffic.start()
        tail.until(commits_beyond(10), 30, "turns committed by A")
        b.start()
        tail.until(lambda t: "rb-b" in holders(t).values(), 30, "B to take partitions")
        split = set(holders(tail).values())
        tail.until(commits_beyond(tail.counts[ev.EventType.TURN_COMMIT] + 10), 30, "turns after B joined")
        summary_a = a.stop()
        tail.until(
            lambda t: set(holders(t).values()) == {"rb-b"} and len(holders(t)) == PARTITIONS,
            30,
            "B to hold every partition",
        )
        tail.until(commits_beyond(tail.counts[ev.EventType.TURN_COMMIT] + 10), 30, "turns on B alone")
        traffic.stop()
        tail.until(
            lambda t: t.counts[ev.EventType.SESSION_CLOSE] >= len(sessions), 30, "every session closed"
        )
        summary_b = b.stop()
    finally:
        traffic._stop.set()
        a.ensure_dead()
        b.ensure_dead()
        tail.close()

    assert split == {"rb-a", "rb-b"}, "after B joined, both held partitions"
    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    assert check_log(rows) == []
    dlq = read_dlq(kafka_bootstrap, prefix, partitions=PARTITIONS)
    missing, duplicated = accounted([*opens, *traffic.sent], rows, dlq)
    assert (missing, duplicated) == (set(), set())
    grants: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for r in rows:
        if isinstance(r.event.payload, ev.LeaseGranted):
            grants[r.partition].append((r.event.payload.epoch, r.event.payload.holder))
    for p, chain in grants.items():
        # Each move is epoch + 1, and B ends up with every partition.
        assert [e for e, _ in chain] == list(range(1, len(chain) + 1)), (p, chain)
        assert chain[0][1] == "rb-a" and chain[-1][1] == "rb-b", (p, chain)
    assert sorted(grants) == list(range(PARTITIONS))
    # Both did real work.
    assert summary_a["turns_committed"] > 0 and summary_b["turns_committed"] > 0
