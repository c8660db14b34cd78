"""Two tenants, one session id: every canned report keeps them apart (real broker).

The two-tenant log and three dead letters are written to ``<prefix>.log`` and
``<prefix>.dlq`` as the processor writes them (ABI Avro, routing headers), then
loaded with ``rspp audit load``'s Kafka path. A dead letter is filed under the
tenant of its envelope (what the processor established), never under the tenant
its original record's headers claim.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from replay.audit import REPORTS, AuditStore
from streams.abi.codec import EventCodec
from streams.abi.events import Envelope, NodeOutput
from streams.topics import TopicLayout, apply_topics
from tests.audit import two_tenants as tt
from tests.conftest import drop_topics

pytestmark = pytest.mark.kafka


@dataclass(frozen=True, slots=True)
class Loaded:
    db: Path
    log: list[Envelope]
    dead: list[Envelope]


@pytest.fixture(scope="module")
def loaded(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    import uuid

    from confluent_kafka import Producer

    prefix = f"t-audit-tenants-{uuid.uuid4().hex[:8]}"
    layout = TopicLayout(prefix=prefix, partitions=1)
    apply_topics(kafka_bootstrap, layout)
    try:
        log, dead = tt.shared_session_log(), tt.dead_letters()
        codec = EventCodec()
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
        for topic, events in ((layout.log, log), (layout.dlq, dead)):
            for env in events:
                value, headers = codec.encode_with_headers(env)
                producer.produce(topic, value, key=env.session_id.encode(), partition=0,
                                 headers=headers)
        assert producer.flush(30) == 0
        db = tmp_path_factory.mktemp("audit-tenants") / "audit.duckdb"
        result = AuditStore(db).load_kafka(kafka_bootstrap, prefix, idle_timeout_s=5)
        assert (result.events, result.dead_letters) == (len(log), len(dead))
        yield Loaded(db, log, dead)
    finally:
        drop_topics(kafka_bootstrap, prefix + ".")


def test_the_operator_view_keeps_the_shared_session_id_apart(loaded: Loaded) -> None:
    store = AuditStore(loaded.db)
    turns = {(t["tenant_id"], t["session_id"], t["turn_id"]): t for t in store.report("turns")}
    assert set(turns) == {("acme", "call-1", "t1"), ("globex", "call-1", "t1"),
                          ("globex", "call-1", "t2")}
    assert turns[("acme", "call-1", "t1")]["abort_reason"] == "cancelled: barge-in"
    assert turns[("globex", "call-1", "t1")]["abort_reason"] == "deadline"
    assert turns[("globex", "call-1", "t1")]["outputs_accepted"] == 1
    assert turns[("acme", "call-1", "t1")]["outputs_accepted"] == 1
    # globex accepted output on call-1/t1 and aborted it after acme's cancel of its own
    # call-1/t1: neither is acme's egress after the cancel, nor the abort it caused.
    (cancel,) = store.report("cancels")
    assert (cancel["tenant_id"], cancel["egress_after_cancel"]) == ("acme", 0)
    assert cancel["abort_reason"] == "cancelled: barge-in"
    sessions = {(r["tenant_id"], r["session_id"]): r for r in store.report("bundles_by_session")}
    assert set(sessions) == {("acme", "call-1"), ("globex", "call-1")}
    assert (sessions[("acme", "call-1")]["turns"], sessions[("globex", "call-1")]["turns"]) == (1, 2)
    assert [(r["tenant_id"], r["shed_count"]) for r in store.report("sheds")] == [("globex", 3)]
    dlq = {(r["tenant_id"], r["session_id"], r["original_offset"]) for r in store.report("dlq")}
    assert dlq == {("globex", "call-1", 7), ("acme", "call-1", 8), ("__system__", "__unrouted__", 9)}


def test_dead_letters_are_filed_under_the_tenant_of_their_envelope(loaded: Loaded) -> None:
    store = AuditStore(loaded.db)
    # Offset 7 claimed acme in its headers but the processor filed it under globex; offset 9
    # claimed acme too but the processor could not place it: neither is acme's.
    acme = store.report("dlq", tenant="acme")
    assert [(d["session_id"], d["original_offset"]) for d in acme] == [("call-1", 8)]
    globex = store.report("dlq", tenant="globex")
    assert [(d["session_id"], d["original_offset"]) for d in globex] == [("call-1", 7)]
    assert store.sql("SELECT original_offset FROM v_dead_letters", tenant="acme") == [
        {"original_offset": 8}]
    # The claim is still visible to the tenant it was filed under, as evidence.
    (row,) = store.sql("SELECT original_headers FROM v_dead_letters", tenant="globex")
    assert '"rspp_tenant":"acme"' in row["original_headers"]


def _events_of(log: list[Envelope], tenant: str) -> list[Envelope]:
    return [e for e in log if e.tenant_id == tenant]


@pytest.mark.parametrize("tenant", tt.TENANTS)
def test_every_report_scoped_to_a_tenant_shows_only_its_rows(loaded: Loaded, tenant: str) -> None:
    store = AuditStore(loaded.db)
    other = next(t for t in tt.TENANTS if t != tenant)
    mine = _events_of(loaded.log, tenant)
    for name in REPORTS:
        rows = store.report(name, tenant=tenant)
        assert all(r.get("tenant_id", tenant) == tenant for r in rows), name
        assert other not in str(rows), name
    turns = store.report("turns", tenant=tenant)
    assert sorted(t["turn_id"] for t in turns) == sorted({e.turn_id for e in mine if e.turn_id})
    (session,) = store.report("bundles_by_session", tenant=tenant)
    assert session["turns"] == len(turns)
    (lease,) = store.report("leases", tenant=tenant)
    assert lease["events_written"] == len(mine) and lease["zombie_writes"] == 0
    latencies = store.report("node_latency", tenant=tenant)
    assert {r["max_us"] for r in latencies} == {tt.LATENCY_US[tenant]}
    assert sum(r["outputs"] for r in latencies) == sum(
        1 for e in mine if isinstance(e.payload, NodeOutput))
    assert len(store.report("cancels", tenant=tenant)) == (1 if tenant == "acme" else 0)
    assert len(store.report("sheds", tenant=tenant)) == (1 if tenant == "globex" else 0)
