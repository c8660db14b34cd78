"""Property tests of the Kafka-free turn engine: cancel fencing and determinism.

The engine is driven directly: ingress events go to ``TurnEngine.apply``, node
reports are put on its report queue — the graph's tasks never get to run (no
await happens during a scenario), so the scenario alone decides what every node
"emitted" and when the engine sees it. That lets hypothesis interleave data,
node outputs still sitting in the queue, cancels of every scope and turn
endings in any order. Records land in an in-memory sink behind the real
:class:`EventWriter` and codec.

Properties:
- after a CANCEL is appended, no OUTPUT_ACCEPTED / PLAYBACK_STARTED inside its
  scope (turn, node of that turn, or the session's turn) is ever appended — even
  for outputs computed before the cancel and drained after it;
- the log is sound under the log contract (``check_log``);
- the same inputs in the same order give the same events (ids and wall clock
  aside: those are compared by position).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.bundles import read_bundle
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.nodes import (
    AudioOut,
    OutputReport,
    ReplyText,
    TranscriptText,
    TurnOutcome,
    default_registry,
)
from streams.runtime.engine import TurnEngine
from streams.runtime.graphs import GraphCache
from streams.runtime.leases import LeaseBook
from streams.runtime.sessions import SessionKey
from streams.runtime.turns import TurnEnded, TurnKey
from streams.runtime.writer import EventWriter
from streams.testing import LoggedEvent
from streams.topics import TopicLayout

BUNDLE = read_bundle(
    Path(__file__).resolve().parents[2] / "pipelines/bundles/voice_assistant_bundle_v1.json"
)
GRAPHS = GraphCache(default_registry())  # built once: graphs are per plan shape
CODEC = EventCodec()
LAYOUT = TopicLayout(prefix="prop", partitions=1)
SESSION = "prop-session"
KEY = SessionKey("acme", SESSION)
T0 = datetime(2030, 1, 1, tzinfo=UTC)
NODES = ("normalize", "respond", "tts")  # the text-entry graph of simple/v1


@dataclass
class MemorySink:
    """An in-memory ``RecordSink``: what a transactional egress would have committed."""

    records: list[tuple[str, int, bytes]] = field(default_factory=list)

    def append(
        self,
        topic: str,
        *,
        partition: int,
        key: bytes | str | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self.records.append((topic, partition, value))

    def log(self) -> list[LoggedEvent]:
        rows = [(p, v) for t, p, v in self.records if t == LAYOUT.log]
        return [LoggedEvent(p, offset, CODEC.decode(v)) for offset, (p, v) in enumerate(rows)]


# -- the scenario language ---------------------------------------------------------------
Step = tuple[Any, ...]
steps = st.one_of(
    st.tuples(st.just("text"), st.sampled_from(["what time is it", "stop", "play some music"]), st.booleans()),
    st.tuples(st.just("output"), st.sampled_from(NODES)),
    st.tuples(st.just("drain"), st.integers(min_value=1, max_value=6)),
    st.tuples(st.just("cancel"), st.sampled_from(["turn", "session", "node:tts", "node:respond", "turn:past"])),
    st.tuples(st.just("end"), st.sampled_from(["completed", "failed", "cancelled"])),
    st.tuples(st.just("stale_output"),),
)
scenarios = st.lists(steps, min_size=1, max_size=40)


class _Driver:
    """Applies one scenario to a fresh engine, deterministically."""

    def __init__(self) -> None:
        self.sink = MemorySink()
        leases = LeaseBook("prop-holder")
        leases.grant(0, 0)
        writer = EventWriter(layout=LAYOUT, codec=CODEC, egress=self.sink, leases=leases)
        self.engine = TurnEngine(
            writer=writer, bundle=BUNDLE, graphs=GRAPHS, processor_id="prop-holder", prefix="prop"
        )
        self.seq = 0
        self.index: dict[tuple[str, str], int] = {}
        self.dlq: list[str] = []
        self.closed_turns: list[str] = []

    def ingress(self, payload: ev.Payload) -> None:
        event = ev.Envelope.new(
            payload,
            tenant_id="acme",
            session_id=SESSION,
            seq=self.seq,
            event_id=f"in-{self.seq}",
            ts=T0 + timedelta(milliseconds=self.seq),
            correlation=ev.Correlation(correlation_id=f"utt-{self.seq}"),
        )
        self.seq += 1
        reason = self.engine.apply(event, partition=0)
        if reason is not None:
            self.dlq.append(reason)

    def current_turn(self) -> str | None:
        session = self.engine.sessions.get(KEY)
        if session is None or session.turn is None or not session.turn.is_open:
            return None
        return session.turn.turn_id

    def report(self, turn_id: str, node: str) -> None:
        n = self.index.get((turn_id, node), 0)
        self.index[turn_id, node] = n + 1
        item: Any
        if node == "normalize":
            item = TranscriptText(text=f"text {n}", final=True)
        elif node == "respond":
            item = ReplyText(text=f"reply {n}", intent="time")
        else:
            item = AudioOut(pcm=bytes(64), sample_rate=16000, seq=n, final=False)
        start = 1_000_000 * (n + 1)
        self.engine.reports.append(
            (TurnKey("acme", turn_id), OutputReport(node_id=node, item=item, index=n, start_ns=start, end_ns=start + 500))
        )

    def step(self, step: Step) -> None:
        kind = step[0]
        turn = self.current_turn()
        if kind == "text":
            self.ingress(ev.Transcript(kind=ev.TranscriptKind.FINAL if step[2] else ev.TranscriptKind.PARTIAL, text=step[1]))
        elif kind == "output" and turn is not None:
            self.report(turn, step[1])
        elif kind == "stale_output" and self.closed_turns:
            self.report(self.closed_turns[-1], "tts")
        elif kind == "drain":
            self.engine.drain_reports(limit=step[1])
        elif kind == "end" and turn is not None:
            outcome = TurnOutcome(status=step[1], nodes=(), failed_node="tts" if step[1] == "failed" else None, error="boom" if step[1] == "failed" else None)
            self.engine.reports.append((TurnKey("acme", turn), TurnEnded(outcome)))
        elif kind == "cancel":
            what = step[1]
            if what == "session":
                self.ingress(ev.Cancel(scope=ev.CancelScope.SESSION, target="", reason="hang on"))
            elif what.startswith("node:"):
                self.ingress(ev.Cancel(scope=ev.CancelScope.NODE, target=what[5:], reason="skip"))
            elif what == "turn:past" and self.closed_turns:
                self.ingress(ev.Cancel(scope=ev.CancelScope.TURN, target=self.closed_turns[0], reason="late"))
            else:
                self.ingress(ev.Cancel(scope=ev.CancelScope.TURN, target="", reason="barge-in"))
        if turn is not None and self.current_turn() != turn:
            self.closed_turns.append(turn)

    def run(self, scenario: list[Step]) -> list[LoggedEvent]:
        async def go() -> None:
            self.ingress(ev.SessionOpen(transport="sdk", locale="en-US"))
            for s in scenario:
                self.step(s)
            while self.engine.reports:
                self.engine.drain_reports()
            self.engine.draining = True  # shut down as the processor does: held utterances stay held
            self.engine.abort_all(reason="drain")
            # Graphs of turns the scenario ended by hand still hold their input: stop them
            # before they ever run (the scenario decided what they emitted).
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run(go())
        return self.sink.log()


def _fence_violations(rows: list[LoggedEvent]) -> list[str]:
    """Egress events inside the scope of an earlier CANCEL (turn, node or session scope)."""
    fenced_turns: set[str] = set()
    fenced_nodes: set[tuple[str, str]] = set()
    found = []
    for r in rows:
        e = r.event
        if isinstance(e.payload, ev.Cancel) and e.turn_id is not None:
            if e.payload.scope is ev.CancelScope.NODE:
                fenced_nodes.add((e.turn_id, e.payload.target))
            else:
                fenced_turns.add(e.turn_id)
        if e.event_type in (ev.EventType.OUTPUT_ACCEPTED, ev.EventType.PLAYBACK_STARTED) and (
            e.turn_id in fenced_turns or (e.turn_id, e.node_id) in fenced_nodes
        ):
            found.append(f"@{r.offset} {e.event_type.value} {e.turn_id}/{e.node_id} after its cancel")
    return found


def _normalised(rows: list[LoggedEvent]) -> list[ev.Envelope]:
    """Events with ids replaced by their log position and the engine's wall clock blanked."""
    position = {r.event.event_id: f"#{i}" for i, r in enumerate(rows)}
    out = []
    for r in rows:
        e = r.event
        payload = e.payload
        if isinstance(payload, ev.OutputAccepted | ev.PlaybackStarted):
            payload = replace(payload, output_event_id=position[payload.output_event_id])
        cause = e.correlation.causation_id
        out.append(
            replace(
                e,
                event_id=position[e.event_id],
                ts=e.ts if e.event_id.startswith("in-") else T0,
                correlation=replace(e.correlation, causation_id=position.get(cause or "", cause)),
                payload=payload,
            )
        )
    return out


PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(scenarios)
def test_no_egress_after_a_cancel_of_its_scope(scenario: list[Step]) -> None:
    rows = _Driver().run(scenario)
    assert _fence_violations(rows) == []
    assert check_log(rows) == []


@PROPERTY_SETTINGS
@given(scenarios)
def test_same_inputs_in_the_same_order_give_the_same_events(scenario: list[Step]) -> None:
    first, second = _Driver(), _Driver()
    assert _normalised(first.run(scenario)) == _normalised(second.run(scenario))
    assert first.dlq == second.dlq


def test_an_output_computed_before_the_cancel_is_fenced_after_it() -> None:
    """The race the properties cover, spelled out: TTS audio queued, then barge-in, then drained."""
    driver = _Driver()
    rows = driver.run(
        [("text", "what time is it", True), ("output", "tts"), ("drain", 6), ("output", "tts"),
         ("output", "tts"), ("cancel", "turn"), ("drain", 6)]
    )
    types = [r.event.event_type for r in rows if r.event.turn_id]
    accepted = types.count(ev.EventType.OUTPUT_ACCEPTED)
    assert accepted == 1  # only the output drained before the cancel
    assert types[-3:] == [ev.EventType.CANCEL, ev.EventType.TURN_ABORT, ev.EventType.TURN_CLOSE]
    assert types.count(ev.EventType.NODE_OUTPUT) == 1  # reports of the closed turn are dropped
