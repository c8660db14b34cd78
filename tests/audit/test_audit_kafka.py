"""The audit store on a log written by the real runtime (processor on a real broker).

Two tenants talk to one processor: text turns, an audio barge-in (cancel), and
bad records that end in the DLQ. The database is loaded once after the first
round of traffic and once more after a second round, so incremental loading is
checked against exactly the records that arrived in between.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.bundles import read_bundle
from replay.audit import REPORTS, AuditStore, LoadResult
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.client import VoiceClient
from streams.nodes import synthesize_pcm16
from streams.runtime.processor import ProcessorConfig
from streams.testing import LoggedEvent, ProcessorThread, read_dlq, read_log
from streams.topics import TopicLayout, apply_topics
from tests.conftest import drop_topics

pytestmark = pytest.mark.kafka

PARTITIONS = 2
BUNDLE = Path(__file__).resolve().parents[2] / "pipelines" / "bundles" / "voice_assistant_bundle_v1.json"
UTTERANCES = ["what time is it", "play some music", "turn on the kitchen lights"]


@dataclass(frozen=True, slots=True)
class Recorded:
    prefix: str
    db: Path
    first: LoadResult
    first_log: int
    second: LoadResult
    third: LoadResult
    rows: list[LoggedEvent]
    dead: list[LoggedEvent]


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def recorded(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    from confluent_kafka import Producer

    prefix = f"t-audit-{uuid.uuid4().hex[:8]}"
    layout = TopicLayout(prefix=prefix, partitions=PARTITIONS)
    apply_topics(kafka_bootstrap, layout)
    db = tmp_path_factory.mktemp("audit") / "audit.duckdb"
    store = AuditStore(db)
    speech = synthesize_pcm16("set a timer for five minutes")
    config = ProcessorConfig(bootstrap=kafka_bootstrap, prefix=prefix,
                             bundle=read_bundle(BUNDLE), drain_grace_s=5)
    with ProcessorThread(config) as running:
        stats = running.processor.stats
        acme = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
        globex = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="globex")
        sessions = [acme.open_session("a1"), acme.open_session("a2"), globex.open_session("g1")]
        for n, s in enumerate(sessions):
            s.send_transcript(UTTERANCES[n % len(UTTERANCES)])
        acme.flush()
        globex.flush()
        _wait_for(lambda: stats.turns_committed + stats.turns_aborted >= 3, 60, "round 1")
        # Barge-in: half an utterance of audio, then a cancel while the turn is in flight.
        barge = sessions[2]
        for i in range(0, len(speech) // 2, 640):
            barge.send_audio(speech[i: i + 640])
        globex.flush()
        time.sleep(0.05)
        barge.cancel(reason="barge-in")
        globex.flush()
        _wait_for(lambda: stats.turns_aborted >= 1, 60, "the barge-in abort")
        raw = Producer({"bootstrap.servers": kafka_bootstrap})
        raw.produce(layout.data, b"not avro", key=b"g1", headers=[
            ("rspp_lane", b"data"), ("rspp_session", b"g1"), ("rspp_tenant", b"globex")])
        raw.produce(layout.data, b"\x00\x00", key=b"x", headers=[("rspp_lane", b"data"),
                                                                  ("rspp_session", b"x")])
        raw.flush(10)
        _wait_for(lambda: running.processor.dlq_count >= 2, 30, "dead letters")
        first_log = len(read_log(kafka_bootstrap, prefix, partitions=PARTITIONS))
        first = store.load_kafka(kafka_bootstrap, prefix, idle_timeout_s=3)
        # Second round: more turns for both tenants, then the sessions end.
        for n, s in enumerate(sessions):
            s.send_transcript(UTTERANCES[(n + 1) % len(UTTERANCES)])
        acme.flush()
        globex.flush()
        _wait_for(lambda: stats.turns_committed + stats.turns_aborted >= 7, 60, "round 2")
        applied = stats.events_in
        for s in sessions:
            s.close()
        acme.flush()
        globex.flush()
        _wait_for(lambda: stats.events_in >= applied + len(sessions), 30, "session closes")
    second = store.load_kafka(kafka_bootstrap, prefix, idle_timeout_s=3)
    third = store.load_kafka(kafka_bootstrap, prefix, idle_timeout_s=3)
    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    dead = read_dlq(kafka_bootstrap, prefix, partitions=PARTITIONS)
    assert check_log(rows) == []
    yield Recorded(prefix, db, first, first_log, second, third, rows, dead)
    drop_topics(kafka_bootstrap, prefix + ".")


def test_row_counts_match_the_log_and_loads_are_incremental(recorded: Recorded) -> None:
    store = AuditStore(recorded.db)
    rows, dead = recorded.rows, recorded.dead
    assert recorded.first.events == recorded.first_log > 0
    assert recorded.first.dead_letters == len(dead) == 2
    # The second load adds exactly what arrived in between; the third adds nothing.
    assert recorded.second.events == len(rows) - recorded.first_log > 0
    # It resumes after the loaded offsets: nothing already loaded is read (and skipped) again.
    assert recorded.second.skipped == 0
    assert (recorded.third.events, recorded.third.dead_letters) == (0, 0)
    (total,) = store.sql("SELECT count(*) AS n, count(DISTINCT (partition, \"offset\")) AS d FROM events")
    assert total == {"n": len(rows), "d": len(rows)}
    by_type = {r["event_type"]: r["n"] for r in store.sql(
        "SELECT event_type, count(*) AS n FROM events GROUP BY ALL")}
    want: dict[str, int] = defaultdict(int)
    for r in rows:
        want[r.event.event_type.value] += 1
    assert by_type == want
    outputs = store.sql("SELECT count(*) AS n FROM v_node_outputs")[0]["n"]
    assert outputs == want["NODE_OUTPUT"]
    loaded = {(r["partition"], r["next_offset"]) for r in store.loaded() if r["topic"].endswith(".log")}
    ends = {p: max(r.offset for r in rows if r.partition == p) + 1 for p in {r.partition for r in rows}}
    assert loaded == set(ends.items())


def _first(events: list[ev.Envelope], kind: ev.EventType) -> ev.Envelope | None:
    return next((e for e in events if e.event_type is kind), None)


def _us(a: ev.Envelope | None, b: ev.Envelope | None) -> int | None:
    if a is None or b is None:
        return None
    delta = b.ts - a.ts
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def test_turn_latencies_in_sql_match_the_events(recorded: Recorded) -> None:
    turns: dict[tuple[str, str], list[ev.Envelope]] = defaultdict(list)
    for r in recorded.rows:  # partition/offset order = log order within a session
        if r.event.turn_id is not None:
            turns[(r.event.session_id, r.event.turn_id)].append(r.event)
    report = {(t["session_id"], t["turn_id"]): t for t in AuditStore(recorded.db).report("turns")}
    assert set(report) == set(turns) and len(turns) >= 7
    kinds = ev.EventType
    for key, events in turns.items():
        row = report[key]
        opened = _first(events, kinds.TURN_OPEN)
        assert opened is not None and row["plan_hash"] == opened.plan_hash
        assert row["epoch"] == opened.lease_epoch
        close = _first(events, kinds.TURN_CLOSE)
        assert close is not None and isinstance(close.payload, ev.TurnClose)
        assert row["outcome"] == close.payload.outcome.value
        assert row["open_to_first_output_us"] == _us(opened, _first(events, kinds.OUTPUT_ACCEPTED))
        assert row["cancel_to_abort_us"] == _us(_first(events, kinds.CANCEL), _first(events, kinds.TURN_ABORT))
    aborted = [t for t in report.values() if t["outcome"] == "ABORTED"]
    assert len(aborted) == 1 and aborted[0]["cancel_to_abort_us"] >= 0
    (cancel,) = AuditStore(recorded.db).report("cancels")
    assert cancel["egress_after_cancel"] == 0
    assert cancel["cancel_to_abort_us"] == aborted[0]["cancel_to_abort_us"]


def test_node_latency_percentiles_match_the_events(recorded: Recorded) -> None:
    by_node: dict[str, list[int]] = defaultdict(list)
    for r in recorded.rows:
        p = r.event.payload
        if isinstance(p, ev.NodeOutput) and p.latency_us is not None and r.event.node_id:
            by_node[r.event.node_id].append(p.latency_us)
    assert by_node
    report = {row["node_id"]: row for row in AuditStore(recorded.db).report("node_latency")}
    assert set(report) == set(by_node)
    for node, values in by_node.items():
        ranked = sorted(values)
        for q, col in ((0.5, "p50_us"), (0.95, "p95_us"), (0.99, "p99_us")):
            assert report[node][col] == ranked[max(0, math.ceil(q * len(ranked)) - 1)], (node, col)
        assert report[node]["outputs"] == len(values)


def test_tenant_scoping_holds_for_every_report(recorded: Recorded) -> None:
    store = AuditStore(recorded.db)
    everything = {name: store.report(name) for name in REPORTS}
    assert {r["tenant_id"] for r in everything["turns"]} == {"acme", "globex"}
    assert len(everything["dlq"]) == 2
    for tenant, other in (("acme", "globex"), ("globex", "acme")):
        for name in REPORTS:
            rows = store.report(name, tenant=tenant)
            assert all(r.get("tenant_id", tenant) == tenant for r in rows), (name, tenant)
            assert all(other not in str(r.values()) for r in rows), (name, tenant)
        turns = store.report("turns", tenant=tenant)
        want = [r for r in everything["turns"] if r["tenant_id"] == tenant]
        assert turns == want and turns
    # Headers establish no tenant: the undecodable record whose headers named globex is not
    # globex's (the processor could not place it), nor is the headerless one anybody's.
    assert not {d["tenant_id"] for d in everything["dlq"]} & {"acme", "globex"}
    assert store.report("dlq", tenant="globex") == []
    assert store.report("dlq", tenant="acme") == []
    assert store.report("cancels", tenant="acme") == []
    acme_outputs = sum(1 for r in recorded.rows if r.event.tenant_id == "acme"
                       and isinstance(r.event.payload, ev.NodeOutput)
                       and r.event.payload.latency_us is not None)
    assert sum(r["outputs"] for r in store.report("node_latency", tenant="acme")) == acme_outputs
    leases = store.report("leases", tenant="globex")
    assert leases and all(r["zombie_writes"] == 0 for r in leases)
    globex_events = sum(1 for r in recorded.rows if r.event.tenant_id == "globex")
    assert sum(r["events_written"] for r in leases) == globex_events
