"""Golden-log helpers for replay jobs and tests: record synthetic logs per LOG_CONTRACT.md.

:class:`LogRecorder` appends exactly what ``rspp run`` appends — lease grants,
session events, recorded inputs, node outputs, egress acks and lifecycle
markers, with real frozen plans (``TurnPlanResolver`` over a real bundle) and
real outputs of the deterministic nodes (``streams.nodes``: normalize, drop
fillers, rules responder). Only the non-deterministic providers are stand-ins:
STT results are given by the caller and TTS audio is a few digest-derived bytes,
which keeps fixtures a few KB. :func:`write_log` is the one step that turns a
recording into files, so swapping in a real-runtime recording touches nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipelines.canonical import canonical_json
from pipelines.models.plan import (
    LeaseSnapshot,
    ResolvedTurnPlan,
    RoutingSnapshot,
    SessionSnapshot,
    TurnOpenRequest,
)
from pipelines.models.resolved import PipelineBundle
from pipelines.plans import TurnPlanResolver
from replay.export import ContainerWriter
from replay.sources import META_PARTITION, META_PREFIX, META_TOPIC, SYSTEM_TENANT
from streams.abi.events import (
    Admit,
    AudioChunk,
    Cancel,
    CancelScope,
    Correlation,
    EndOfUtterance,
    Envelope,
    LeaseGranted,
    NodeOutput,
    OutputAccepted,
    Payload,
    PlaybackStarted,
    Reject,
    SessionClose,
    SessionOpen,
    Transcript,
    TranscriptKind,
    TurnAbort,
    TurnActive,
    TurnClose,
    TurnCommit,
    TurnOpen,
    TurnOutcome,
)
from streams.nodes import (
    EdgeSpec,
    Item,
    NodeDecl,
    OutputReport,
    ReplyText,
    Report,
    TranscriptText,
    build_graph,
    default_registry,
)

__all__ = ["LogRecorder", "output_kind", "write_log"]

_NS = uuid.UUID("6f1c1a52-0d5e-4b8e-9a51-52e5d0c0ffee")


def output_kind(node_type: str, media_type: str) -> str:
    """NODE_OUTPUT.kind for a node: transcript (STT), text, reply or audio."""
    if media_type.startswith("audio/"):
        return "audio"
    if media_type == "text/reply":
        return "reply"
    return "transcript" if node_type.startswith("stt.") else "text"


@dataclass(slots=True)
class _Open:
    turn_id: str
    plan: ResolvedTurnPlan
    correlation_id: str
    last_id: str


@dataclass(slots=True)
class LogRecorder:
    """Builds one partition's log in memory. Ids and timestamps are deterministic."""

    prefix: str
    tenant: str
    bundle: PipelineBundle
    partition: int = 0
    tts_chunk_bytes: int = 32
    events: list[Envelope] = field(default_factory=list)
    epoch: int = 0
    holder: str = "proc-a"
    _seq: dict[str, int] = field(default_factory=dict)
    _ids: int = 0
    _clock: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    _resolver: TurnPlanResolver = field(default_factory=TurnPlanResolver)

    # -- primitives ---------------------------------------------------------------------------
    def _id(self) -> str:
        self._ids += 1
        return str(uuid.uuid5(_NS, f"{self.prefix}/{self.partition}/{self._ids}"))

    def append(self, payload: Payload, *, session_id: str, tenant_id: str | None = None,
               turn: _Open | None = None, node_id: str | None = None, causation: str | None = None,
               correlation_id: str | None = None, event_id: str | None = None,
               bundle_id: str | None = None) -> Envelope:
        seq = self._seq.get(session_id, 0)
        self._seq[session_id] = seq + 1
        self._clock += timedelta(milliseconds=20)
        env = Envelope.new(
            payload, tenant_id=tenant_id or self.tenant, session_id=session_id, seq=seq,
            lease_epoch=self.epoch, turn_id=turn.turn_id if turn else None, node_id=node_id,
            correlation=Correlation(correlation_id=correlation_id or (
                turn.correlation_id if turn else session_id), causation_id=causation),
            bundle_id=bundle_id or (self.bundle.ref if turn else None),
            plan_hash=turn.plan.plan_hash if turn else None,
            event_id=event_id or self._id(), ts=self._clock)
        self.events.append(env)
        if turn is not None:
            turn.last_id = env.event_id
        return env

    def grant(self, epoch: int, holder: str) -> Envelope:
        self.epoch, self.holder = epoch, holder
        return self.append(LeaseGranted(partition=self.partition, epoch=epoch, holder=holder),
                           session_id=f"__partition-{self.partition}", tenant_id=SYSTEM_TENANT)

    # -- sessions -----------------------------------------------------------------------------
    def open_session(self, session_id: str, *, admit: bool = True) -> None:
        opened = self.append(SessionOpen(transport="livekit", locale="en-US", profile="simple/v1"),
                             session_id=session_id)
        if admit:
            self.append(Admit(reason="pinned"), session_id=session_id, causation=opened.event_id,
                        bundle_id=self.bundle.ref)
        else:
            self.append(Reject(reason="tenant over concurrent-session quota"),
                        session_id=session_id, causation=opened.event_id)

    def close_session(self, session_id: str) -> None:
        self.append(SessionClose(reason="client hung up"), session_id=session_id)

    # -- turns --------------------------------------------------------------------------------
    def open_turn(self, session_id: str, turn_id: str, *, trigger: str) -> _Open:
        correlation_id = f"utt-{turn_id}"
        plan = self._resolver.resolve(
            bundle=self.bundle,
            session=SessionSnapshot(tenant_id=self.tenant, session_id=session_id,
                                    pinned_bundle_digest=self.bundle.digest,
                                    next_seq=self._seq.get(session_id, 0), last_epoch=self.epoch),
            turn=TurnOpenRequest(turn_id=turn_id, trigger=trigger, correlation_id=correlation_id,
                                 opened_at_us=int(self._clock.timestamp() * 1_000_000)),
            lease=LeaseSnapshot(epoch=self.epoch, holder=self.holder, partition=self.partition),
            routing=RoutingSnapshot(topic_prefix=self.prefix, partition=self.partition,
                                    processor_id=self.holder))
        turn = _Open(turn_id, plan, correlation_id, "")
        opened = self.append(TurnOpen(plan_hash=plan.plan_hash,
                                      plan_json=canonical_json(plan.model_dump(mode="json")).decode()),
                             session_id=session_id, turn=turn)
        self.append(TurnActive(trigger=trigger), session_id=session_id, turn=turn,
                    causation=opened.event_id)
        return turn

    def text_input(self, session_id: str, turn: _Open, text: str) -> Envelope:
        return self.append(Transcript(kind=TranscriptKind.FINAL, text=text, confidence=0.93),
                           session_id=session_id, turn=turn, event_id=self._id())

    def audio_input(self, session_id: str, turn: _Open, chunks: int, *,
                    chunk_bytes: int = 64) -> Envelope:
        last = None
        for i in range(chunks):
            pcm = hashlib.sha256(f"{turn.turn_id}/{i}".encode()).digest() * (chunk_bytes // 32 or 1)
            last = self.append(AudioChunk(codec="pcm16", sample_rate=16000, channels=1, seq=i,
                                          audio=pcm[:chunk_bytes]), session_id=session_id, turn=turn)
        del last  # recorded inputs carry no causation (LOG_CONTRACT)
        return self.append(EndOfUtterance(last_chunk_seq=chunks - 1, reason="vad"),
                           session_id=session_id, turn=turn)

    def outputs(self, session_id: str, turn: _Open, cause: Envelope, *,
                stt: Sequence[tuple[str, bool]] = (), text: str | None = None,
                tts_chunks: int = 2) -> dict[str, list[Envelope]]:
        """Run the turn's graph: recorded STT results (if any), real text nodes, stand-in TTS."""
        plan = turn.plan
        types = {n.id: n for n in plan.nodes}
        made: dict[str, list[Envelope]] = {}
        last_by_node: dict[str, str] = {}
        upstream = {e.target: e.source for e in plan.edges}

        def emit(node_id: str, item: Item, index: int, final: bool) -> Envelope:
            node = types[node_id]
            src = upstream.get(node_id)
            caused_by = last_by_node.get(src, cause.event_id) if src else cause.event_id
            payload = _payload(item, node.type, node.output, index, final)
            env = self.append(payload, session_id=session_id, turn=turn, node_id=node_id,
                              causation=caused_by)
            last_by_node[node_id] = env.event_id
            made.setdefault(node_id, []).append(env)
            return env

        stt_node = next((n.id for n in plan.nodes if n.type.startswith("stt.")), None)
        feed: list[Item] = []
        for i, (said, final) in enumerate(stt):
            assert stt_node is not None
            heard = TranscriptText(said, final)
            emit(stt_node, heard, i, final)
            feed.append(heard)
        if text is None and isinstance(cause.payload, Transcript):
            text = cause.payload.text  # a text turn: the recorded transcript is the graph input
        if text is not None:
            feed.append(TranscriptText(text, True, 0.93))
        for report in _run_text_nodes(plan, feed):
            item = report.item
            emit(report.node_id, item, report.index,
                 item.final if isinstance(item, TranscriptText) else True)
        tts = next((n.id for n in plan.nodes if n.type.startswith("tts.")), None)
        reply = next((e for e in made.get("respond", [])), None)
        if tts is not None and reply is not None:
            assert isinstance(reply.payload, NodeOutput)
            seed = hashlib.sha256((reply.payload.text or "").encode()).digest()
            for i in range(tts_chunks):
                pcm = (seed * (self.tts_chunk_bytes // 32 + 1))[: self.tts_chunk_bytes]
                self.append(NodeOutput(output_seq=i, kind="audio", data=pcm,
                                       content_type="audio/pcm16;rate=16000",
                                       final=i == tts_chunks - 1),
                            session_id=session_id, turn=turn, node_id=tts,
                            causation=last_by_node.get(types[tts].id, reply.event_id))
                last_by_node[tts] = self.events[-1].event_id
                made.setdefault(tts, []).append(self.events[-1])
        return made

    def accept(self, session_id: str, turn: _Open, output: Envelope, *,
               playback: bool = False) -> None:
        self.append(OutputAccepted(output_event_id=output.event_id), session_id=session_id,
                    turn=turn, node_id=output.node_id, causation=output.event_id)
        if playback:
            self.append(PlaybackStarted(output_event_id=output.event_id, offset_ms=0),
                        session_id=session_id, turn=turn, node_id=output.node_id,
                        causation=output.event_id)

    def cancel(self, session_id: str, turn: _Open, *, reason: str = "barge-in") -> Envelope:
        return self.append(Cancel(scope=CancelScope.TURN, target=turn.turn_id, reason=reason),
                           session_id=session_id, turn=turn, correlation_id=f"ctl-{turn.turn_id}")

    def commit(self, session_id: str, turn: _Open, outputs: int) -> None:
        done = self.append(TurnCommit(outputs=outputs), session_id=session_id, turn=turn,
                           causation=turn.last_id)
        self.append(TurnClose(outcome=TurnOutcome.COMMITTED), session_id=session_id, turn=turn,
                    causation=done.event_id)

    def abort(self, session_id: str, turn: _Open, reason: str, *,
              cause: Envelope | None = None) -> None:
        done = self.append(TurnAbort(reason=reason), session_id=session_id, turn=turn,
                           causation=cause.event_id if cause else None)
        self.append(TurnClose(outcome=TurnOutcome.ABORTED), session_id=session_id, turn=turn,
                    causation=done.event_id)


def _payload(item: Item, node_type: str, media: str, index: int, final: bool) -> NodeOutput:
    text = item.text if isinstance(item, TranscriptText | ReplyText) else None
    return NodeOutput(output_seq=index, kind=output_kind(node_type, media), text=text,
                      content_type=media, final=final)


def _run_text_nodes(plan: ResolvedTurnPlan, feed: Iterable[Item]) -> list[OutputReport]:
    """Run the plan's deterministic text nodes as one graph (real node code)."""
    registry = default_registry()
    nodes = [n for n in plan.nodes if registry.is_deterministic(n.type)]
    ids = {n.id for n in nodes}
    edges = [EdgeSpec(e.source, e.target, e.max_items.value) for e in plan.edges
             if e.source in ids and e.target in ids]
    entry = next(n.id for n in nodes if not any(e.dst == n.id for e in edges))
    graph = build_graph(registry=registry, entry=entry, edges=edges,
                        nodes=[NodeDecl(node_id=n.id, type_name=n.type, config=dict(n.config.value))
                               for n in nodes])
    reports: list[Report] = []

    async def go() -> None:
        run = graph.start_turn(session_id="rec", turn_id="rec", correlation_id="rec",
                               reporter=reports.append)
        for item in feed:
            await run.feed(item)
        await run.end_input()
        await run.wait()

    asyncio.run(go())
    return [r for r in reports if isinstance(r, OutputReport)]


def write_log(events: Sequence[Envelope], path: Path, *, prefix: str, partition: int = 0,
              codec: str = "deflate") -> str:
    """Write one partition's recording as a container file; returns its sha256."""
    writer = ContainerWriter(path, codec=codec, metadata={
        META_PREFIX: prefix, META_TOPIC: f"{prefix}.log", META_PARTITION: str(partition)})
    for env in events:
        writer.write(env)
    return writer.close()
