"""A session's identity is (tenant, session): two tenants using the same session id are two
sessions in the engine, its snapshots and the log check (issue reproduction 1, single-tenant
lanes: the tenant comes from the body)."""

from __future__ import annotations

from datetime import UTC, datetime

from replay.logcheck import check_log
from streams.abi import events as ev
from streams.runtime.engine import TurnEngine
from streams.runtime.leases import LeaseBook
from streams.runtime.sessions import SessionKey, SessionSnapshot
from streams.runtime.writer import EventWriter
from tests.runtime.test_engine_properties import BUNDLE, CODEC, GRAPHS, LAYOUT, MemorySink
from tests.runtime.test_held_shedding import _in_loop


def _event(payload: ev.Payload, tenant: str, seq: int) -> ev.Envelope:
    return ev.Envelope.new(
        payload, tenant_id=tenant, session_id="call-1", seq=seq,
        ts=datetime(2030, 1, 1, 0, 0, seq, tzinfo=UTC),
    )


def test_another_tenant_cannot_speak_into_or_close_a_call() -> None:
    _in_loop(_two_tenants)


def _two_tenants() -> None:
    sink = MemorySink()
    leases = LeaseBook("holder")
    leases.grant(0, 0)
    engine = TurnEngine(
        writer=EventWriter(layout=LAYOUT, codec=CODEC, egress=sink, leases=leases),
        bundle=BUNDLE, graphs=GRAPHS, processor_id="holder", prefix="prop",
    )
    say = ev.Transcript(kind=ev.TranscriptKind.FINAL, text="what time is it", confidence=1.0)
    steal = ev.Transcript(kind=ev.TranscriptKind.FINAL, text="transfer all my money", confidence=1.0)
    assert engine.apply(_event(ev.SessionOpen(), "acme", 0), partition=0) is None
    assert engine.apply(_event(say, "acme", 1), partition=0) is None
    assert engine.apply(_event(ev.SessionOpen(), "globex", 0), partition=0) is None
    assert engine.apply(_event(steal, "globex", 1), partition=0) is None
    assert engine.apply(_event(ev.SessionClose(reason="bye"), "globex", 2), partition=0) is None
    acme, globex = SessionKey("acme", "call-1"), SessionKey("globex", "call-1")
    assert not engine.sessions[acme].closed and engine.sessions[globex].closed
    assert {k.tenant for k in engine.turns} == {"acme"}  # globex's turn ended with its call
    engine.abort_all(reason="end")
    rows = sink.log()
    assert check_log(rows) == []
    acme_texts = {getattr(r.event.payload, "text", None) for r in rows if r.event.tenant_id == "acme"}
    assert "transfer all my money" not in acme_texts and "what time is it" in acme_texts
    # Two snapshots under two changelog keys.
    keys = {engine.sessions[k].key.changelog_key() for k in (acme, globex)}
    assert keys == {b'["acme","call-1"]', b'["globex","call-1"]'}
    snap = SessionSnapshot.from_bytes(engine.sessions[acme].snapshot().to_bytes())
    assert snap.key == acme
