"""A session keeps the bundle it was admitted under, through a restore on a processor that
runs another bundle; a session whose bundle cannot be loaded is drained, never switched."""

from __future__ import annotations

from datetime import UTC, datetime

from pipelines.bundles import read_bundle
from pipelines.models.resolved import PipelineBundle
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.config import repo_root
from streams.runtime.engine import TurnEngine
from streams.runtime.leases import LeaseBook
from streams.runtime.sessions import SessionKey, SessionState
from streams.runtime.writer import EventWriter
from tests.runtime.test_engine_properties import CODEC, GRAPHS, LAYOUT, MemorySink
from tests.runtime.test_held_shedding import _in_loop

BUNDLES = repo_root() / "pipelines" / "bundles"
V1_0 = read_bundle(BUNDLES / "voice_assistant_bundle_v1.json")
V1_1 = read_bundle(BUNDLES / "voice_assistant_bundle_v1_1.json")
KEY = SessionKey("acme", "pin-1")


def _engine(bundle: PipelineBundle, store: dict[str, PipelineBundle], sink: MemorySink) -> TurnEngine:
    leases = LeaseBook("pin-holder")
    leases.grant(0, 0)
    writer = EventWriter(layout=LAYOUT, codec=CODEC, egress=sink, leases=leases)

    def load(ref: str) -> PipelineBundle:
        return store[ref]

    return TurnEngine(
        writer=writer, bundle=bundle, graphs=GRAPHS, processor_id="pin-holder", prefix="prop",
        load_bundle=load,
    )


def _say(engine: TurnEngine, seq: int, text: str = "what time is it") -> str | None:
    event = ev.Envelope.new(
        ev.Transcript(kind=ev.TranscriptKind.FINAL, text=text, confidence=1.0),
        tenant_id=KEY.tenant, session_id=KEY.session, seq=seq,
        ts=datetime(2030, 1, 1, 0, 0, seq, tzinfo=UTC),
    )
    return engine.apply(event, partition=0)


def _moved(engine: TurnEngine) -> SessionState:
    """The session as the next processor restores it from its snapshot."""
    return SessionState.restore(engine.sessions[KEY].snapshot())


def test_a_restored_session_keeps_its_bundle_on_a_processor_running_another() -> None:
    _in_loop(_keeps_its_bundle)


def _keeps_its_bundle() -> None:
    first_sink = MemorySink()
    first = _engine(V1_1, {}, first_sink)
    assert _say(first, 0) is None
    first.abort_all(reason="test: end the turn")
    restored = _moved(first)
    assert restored.bundle_digest == V1_1.digest

    sink = MemorySink()
    second = _engine(V1_0, {V1_1.digest: V1_1}, sink)  # redeployed with the older bundle
    second.restore(restored)
    assert _say(second, 1, "stop") is None
    opens = [r.event for r in sink.log() if r.event.event_type is ev.EventType.TURN_OPEN]
    assert [e.bundle_id for e in opens] == [V1_1.bundle_id]
    assert V1_1.digest in opens[0].payload.plan_json  # type: ignore[attr-defined]

    new_sink = MemorySink()
    fresh = _engine(V1_0, {}, new_sink)  # a new session gets the processor's own bundle
    assert _say(fresh, 0) is None
    assert {r.event.bundle_id for r in new_sink.log() if r.event.turn_id} == {V1_0.bundle_id}


def test_a_session_whose_bundle_cannot_be_loaded_is_drained_not_switched() -> None:
    _in_loop(_drained)


def _drained() -> None:
    first = _engine(V1_1, {}, MemorySink())
    assert _say(first, 0) is None
    first.abort_all(reason="test: end the turn")
    sink = MemorySink()
    second = _engine(V1_0, {}, sink)  # the store lacks 1.1
    second.restore(_moved(first))
    reason = _say(second, 1, "stop")
    assert reason is not None and "cannot be loaded" in reason
    rows = sink.log()
    assert not [r for r in rows if r.event.event_type is ev.EventType.TURN_OPEN]
    closes = [r.event.payload for r in rows if isinstance(r.event.payload, ev.SessionClose)]
    assert len(closes) == 1 and closes[0].reason.startswith("drained: pinned bundle")
    assert second.sessions[KEY].closed
    assert check_log(rows) == []
