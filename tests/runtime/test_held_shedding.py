"""Held utterances: bounded, shed oldest-first under the low-latency profile, never silent.

A session that keeps talking while its previous turn responds has its next
utterances held. Past the limit, a shedding bundle drops the oldest and the
engine logs the count as a SHED event (rule + defaulting source); a bundle that
must not shed refuses the newest item with a reason (the processor dead-letters
it). Property: the same hold/start order gives the same shed set, and every item
is exactly one of started, still held, shed or refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from replay.logcheck import check_log
from streams.abi import events as ev
from streams.runtime.held import REFUSED, HeldUtterances, OverflowRule, overflow_rule, size_of
from streams.runtime.leases import LeaseBook
from streams.runtime.sessions import SessionState
from streams.runtime.writer import EventWriter
from tests.runtime.test_engine_properties import (
    BUNDLE,
    CODEC,
    KEY,
    LAYOUT,
    MemorySink,
    _Driver,
)

RULE = OverflowRule(rule="low_latency/drop_oldest", defaulting_source="profile")


def _event(i: int, *, event_id: str | None = None) -> ev.Envelope:
    return ev.Envelope.new(
        ev.Transcript(kind=ev.TranscriptKind.FINAL, text=f"utterance {i}"),
        tenant_id="acme",
        session_id="s",
        seq=i,
        event_id=event_id or f"in-{i}",
    )


ops = st.lists(st.sampled_from(["hold", "hold", "hold", "next"]), max_size=120)


def _run(
    script: list[str], *, limit: int, rule: OverflowRule | None
) -> tuple[list[str], list[str], list[str], list[str], int]:
    held = HeldUtterances(limit=limit, rule=rule)
    started: list[str] = []
    refused: list[str] = []
    sent: list[str] = []
    for i, op in enumerate(script):
        if op == "hold":
            sent.append(f"in-{i}")
            if held.hold("s", _event(i)) is not None:
                refused.append(f"in-{i}")
        else:
            item = held.next("s")
            if item is not None:
                started.append(item.event_id)
    remaining = [e.event_id for e in held.items("s")]
    shed_count = sum(count for _, count in held.take_sheds())
    return sent, started, remaining, refused, shed_count


@settings(max_examples=200, deadline=None)
@given(ops, st.integers(min_value=1, max_value=8), st.booleans())
def test_every_held_item_is_started_held_shed_or_refused(
    script: list[str], limit: int, shedding: bool
) -> None:
    rule = RULE if shedding else None
    sent, started, remaining, refused, shed = _run(script, limit=limit, rule=rule)
    accounted = set(started) | set(remaining) | set(refused)
    assert len(started) + len(remaining) + len(refused) + shed == len(sent)
    assert len(accounted) == len(started) + len(remaining) + len(refused)  # none twice
    assert len(remaining) <= limit
    # Items start in arrival order; what sheds is always older than what survives.
    order = {eid: n for n, eid in enumerate(sent)}
    survivors = started + remaining
    assert survivors == sorted(survivors, key=order.__getitem__)
    if shedding:
        assert refused == []
    else:
        assert shed == 0
    # Same order in, same shed set out.
    assert _run(script, limit=limit, rule=rule) == (sent, started, remaining, refused, shed)


def snapshot_writer() -> tuple[EventWriter, MemorySink]:
    sink = MemorySink()
    leases = LeaseBook("held")
    leases.grant(0, 0)
    return EventWriter(layout=LAYOUT, codec=CODEC, egress=sink, leases=leases), sink


def last_snapshot(sink: MemorySink) -> bytes:
    return [v for t, _, v in sink.records if t == LAYOUT.sessions][-1]


def _audio(i: int, size: int) -> ev.Envelope:
    # Ids as a voice service makes them (a UUID event id, a room/caller session id).
    return ev.Envelope.new(
        ev.AudioChunk(codec="pcm16", sample_rate=16000, channels=1, seq=i, audio=b"\0" * size),
        tenant_id="acme",
        session_id="room-7f3a9c21-caller-000042",
        seq=i,
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.integers(min_value=0, max_value=3000), st.just(-1)), max_size=80),
    st.integers(min_value=300, max_value=8000),
    st.booleans(),
)
def test_held_bytes_stay_under_the_byte_limit(
    script: list[int], limit_bytes: int, shedding: bool
) -> None:
    # -1 starts the oldest held item; n >= 0 holds an audio chunk of n bytes.
    held = HeldUtterances(limit=1000, limit_bytes=limit_bytes, rule=RULE if shedding else None)
    sent = started = refused = 0
    for i, op in enumerate(script):
        if op < 0:
            started += held.next("s") is not None
            continue
        sent += 1
        refused += held.hold("s", _audio(i, op)) is not None
        assert sum(size_of(e) for e in held.items("s")) <= limit_bytes
    shed = sum(count for _, count in held.take_sheds())
    assert started + len(tuple(held.items("s"))) + refused + shed == sent
    if not shedding:
        assert shed == 0


def test_a_session_full_of_held_audio_still_snapshots_as_one_kafka_record() -> None:
    # 20 ms frames of 16 kHz PCM: a thousand of them (the count limit) encode to ~1 MB,
    # over Kafka's default record limit; the byte limit sheds before the snapshot gets there.
    held = HeldUtterances(rule=RULE)
    for i in range(2000):
        assert held.hold("s", _audio(i, 640)) is None
    writer, sink = snapshot_writer()
    writer.snapshot(
        SessionState(session_id="s", tenant_id="acme", partition=0, bundle_id="b"),
        pending=held.items("s"),
    )
    snapshot = last_snapshot(sink)
    assert len(snapshot) < 1_000_000
    assert sum(count for _, count in held.take_sheds()) > 1000  # dropped, and counted


def test_shed_counts_are_per_session_in_first_drop_order() -> None:
    held = HeldUtterances(limit=1, rule=RULE)
    for sid in ("b", "a", "b"):
        held.hold(sid, _event(0))
        held.hold(sid, _event(1))
    assert list(held.take_sheds("a")) == [("a", 1)]
    assert list(held.take_sheds()) == [("b", 3)]
    assert list(held.take_sheds()) == []


def test_refusal_names_the_buffer() -> None:
    held = HeldUtterances(limit=1, rule=None)
    assert held.hold("s", _event(0)) is None
    assert held.hold("s", _event(1)) == REFUSED


def test_the_shipped_low_latency_bundle_sheds_by_its_profile_rule() -> None:
    rule = overflow_rule(BUNDLE)
    assert rule == OverflowRule(rule="low_latency/drop_oldest", defaulting_source="profile")


def _in_loop(body: Callable[[], None]) -> None:
    """Turns start node tasks: the engine needs a running loop (no await happens here)."""

    async def go() -> None:
        body()
        for task in asyncio.all_tasks():  # turn graphs never run: the test decides their reports
            if task is not asyncio.current_task():
                task.cancel()

    asyncio.run(go())


def _flooded(driver: _Driver, finals: int) -> None:
    driver.ingress(ev.SessionOpen(transport="sdk", locale="en-US"))
    for i in range(finals):
        driver.ingress(ev.Transcript(kind=ev.TranscriptKind.FINAL, text=f"stop {i}"))


def test_engine_logs_one_shed_event_for_a_flooded_session_and_keeps_the_newest() -> None:
    _in_loop(_engine_logs_one_shed_event_for_a_flooded_session_and_keeps_the_newest)


def _engine_logs_one_shed_event_for_a_flooded_session_and_keeps_the_newest() -> None:
    driver = _Driver()
    driver.engine.held.limit = 4
    # The first final opens a turn (its input closes at once); the next 10 wait behind it.
    _flooded(driver, 11)
    assert driver.dlq == []
    assert driver.engine.log_sheds() == 6
    held = [e.event_id for e in driver.engine.held.items(KEY)]
    assert held == ["in-8", "in-9", "in-10", "in-11"]  # oldest-first shedding keeps the newest
    rows = driver.sink.log()
    # Session-level: the dropped utterances belong to no turn (one is open right now).
    assert driver.engine.turns
    assert [r.event.turn_id for r in rows if isinstance(r.event.payload, ev.Shed)] == [None]
    sheds = [r.event.payload for r in rows if isinstance(r.event.payload, ev.Shed)]
    assert sheds == [
        ev.Shed(
            reason="held utterance buffer full while the previous turn responds",
            rule="low_latency/drop_oldest",
            defaulting_source="profile",
            lane=ev.Lane.DATA,
            shed_count=6,
        )
    ]
    assert driver.engine.log_sheds() == 0  # logged once
    driver.engine.draining = True
    driver.engine.abort_all(reason="drain")
    assert check_log(driver.sink.log()) == []


def test_closing_a_flooded_session_logs_its_sheds_before_the_close() -> None:
    _in_loop(_closing_a_flooded_session_logs_its_sheds_before_the_close)


def _closing_a_flooded_session_logs_its_sheds_before_the_close() -> None:
    driver = _Driver()
    driver.engine.held.limit = 2
    _flooded(driver, 5)
    driver.ingress(ev.SessionClose(reason="bye"))
    types = [r.event.event_type for r in driver.sink.log()]
    assert types.index(ev.EventType.SHED) < types.index(ev.EventType.SESSION_CLOSE)
    # The two still held never ran: the processor dead-letters them with the reason.
    assert driver.engine.held.items(KEY) == ()


def test_without_a_shed_rule_the_newest_utterance_is_refused() -> None:
    _in_loop(_without_a_shed_rule_the_newest_utterance_is_refused)


def _without_a_shed_rule_the_newest_utterance_is_refused() -> None:
    driver = _Driver()
    driver.engine.held.limit = 3
    driver.engine.held.rule = None
    _flooded(driver, 6)
    assert driver.dlq == [REFUSED, REFUSED]
    assert driver.engine.log_sheds() == 0


def test_audio_beyond_the_turn_input_bound_is_shed_oldest_first_with_the_edge_rule() -> None:
    _in_loop(_audio_beyond_the_turn_input_bound_is_shed_oldest_first_with_the_edge_rule)


def _audio_beyond_the_turn_input_bound_is_shed_oldest_first_with_the_edge_rule() -> None:
    driver = _Driver()
    driver.ingress(ev.SessionOpen(transport="sdk", locale="en-US"))
    chunks = 300
    for i in range(chunks):  # no await: the turn's feeder never drains its queue here
        driver.ingress(
            ev.AudioChunk(codec="pcm16", sample_rate=16000, channels=1, seq=i, audio=bytes(640))
        )
    turn = next(iter(driver.engine.turns.values()))
    # What the graph's input edge holds plus the bounded backlog waiting for room in it.
    bound = turn.graph.input_capacity + turn.graph.input_capacity * 4
    sheds = [r.event for r in driver.sink.log() if isinstance(r.event.payload, ev.Shed)]
    assert sheds, "nothing shed past the bound"
    assert sum(e.payload.shed_count for e in sheds) == chunks - bound  # type: ignore[union-attr]
    assert {(e.payload.reason, e.payload.rule, e.turn_id) for e in sheds} == {  # type: ignore[union-attr]
        ("turn input full", "edge overflow drop_oldest", turn.state.turn_id)
    }
    driver.engine.draining = True
    driver.engine.abort_all(reason="drain")
    assert check_log(driver.sink.log()) == []
