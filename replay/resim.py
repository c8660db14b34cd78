"""Re-simulation: re-execute the plan's deterministic nodes on recorded inputs and diff.

Each deterministic node runs on its own, fed what the log says its upstream
produced (or the turn's recorded inputs for the entry node). Isolating nodes
this way keeps a changed node from making every node after it look changed,
so a divergence names the node whose behaviour moved. Non-deterministic nodes
(real STT engines, TTS) are never re-run: their recorded outputs are the truth
their downstream is fed.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from pipelines.models.plan import ResolvedTurnPlan
from pipelines.models.resolved import ResolvedNode
from replay.model import Divergence, DivergenceKind, Position
from streams.abi.events import (
    AudioChunk,
    Envelope,
    EventType,
    NodeOutput,
    Transcript,
    TranscriptKind,
)
from streams.nodes import (
    AudioFrame,
    AudioOut,
    Graph,
    Item,
    NodeDecl,
    NodeRegistry,
    OutputReport,
    ReplyText,
    Report,
    TranscriptText,
    build_graph,
    default_registry,
)
from streams.nodes.errors import NodeError

__all__ = ["Resimulator", "item_from_output", "text_diff"]

_Indexed = tuple[int, Position, Envelope]


def item_from_output(out: NodeOutput) -> Item:
    """The graph item a recorded NODE_OUTPUT stands for (what its downstream consumed)."""
    if out.kind == "audio":
        rate = 16000
        if out.content_type and "rate=" in out.content_type:
            rate = int(out.content_type.split("rate=")[1].split(";")[0])
        return AudioOut(out.data or b"", rate, out.output_seq, out.final)
    if out.kind == "reply":
        return ReplyText(out.text or "", "")
    return TranscriptText(out.text or "", out.final)


def _item_from_input(env: Envelope) -> Item | None:
    p = env.payload
    if isinstance(p, Transcript):
        return TranscriptText(p.text, p.kind is TranscriptKind.FINAL, p.confidence or 1.0)
    if isinstance(p, AudioChunk):
        return AudioFrame(p.audio, p.sample_rate, p.seq)
    return None


def _render(item: Item) -> tuple[str, bool]:
    """(comparable text, is_text) — audio is compared by digest + length."""
    if isinstance(item, AudioOut | AudioFrame):
        data = item.pcm
        return f"sha256:{hashlib.sha256(data).hexdigest()[:16]} ({len(data)} bytes)", False
    if isinstance(item, TranscriptText):
        return item.text + ("" if item.final else " (partial)"), True
    return item.text, True


def text_diff(expected: str, actual: str) -> str:
    """Word diff: ``[-removed-]`` / ``{+added+}`` inline (readable in a CI log)."""
    a, b = expected.split(), actual.split()
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.extend(a[i1:i2])
            continue
        if i2 > i1:
            out.append("[-" + " ".join(a[i1:i2]) + "-]")
        if j2 > j1:
            out.append("{+" + " ".join(b[j1:j2]) + "+}")
    return " ".join(out)


@dataclass(slots=True)
class Resimulator:
    """Holds the event loop and one built graph per (node, config) across turns."""

    registry: NodeRegistry | None = None
    _loop: asyncio.AbstractEventLoop = field(init=False)
    _graphs: dict[tuple[str, str, bytes], Graph] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        if self.registry is None:
            self.registry = default_registry()

    def close(self) -> None:
        self._loop.close()

    def check(self, session_id: str, turn_id: str, plan: ResolvedTurnPlan,
              events: Sequence[tuple[Position, Envelope]], *, complete: bool) -> list[Divergence]:
        """Diff every deterministic node; ``complete`` = committed (else compare the prefix)."""
        outputs: dict[str, list[_Indexed]] = {}
        inputs: list[_Indexed] = []
        for i, (pos, env) in enumerate(events):
            if env.event_type is EventType.NODE_OUTPUT and env.node_id is not None:
                outputs.setdefault(env.node_id, []).append((i, pos, env))
            elif env.event_type in (EventType.TRANSCRIPT, EventType.AUDIO_CHUNK):
                inputs.append((i, pos, env))
        by_id = {n.id: n for n in plan.nodes}
        out: list[Divergence] = []
        assert self.registry is not None
        for node in plan.nodes:
            if not self.registry.is_deterministic(node.type):
                continue
            feed = self._feed(node, plan, by_id, outputs, inputs)
            recorded = outputs.get(node.id, [])
            if not feed and not recorded:
                continue
            out += self._diff_node(session_id, turn_id, node, feed, recorded, complete=complete)
        return out

    @staticmethod
    def _feed(node: ResolvedNode, plan: ResolvedTurnPlan, by_id: dict[str, ResolvedNode],
              outputs: dict[str, list[_Indexed]], inputs: list[_Indexed]) -> list[Item]:
        sources = [e.source for e in plan.edges if e.target == node.id]
        if not sources:
            items = [_item_from_input(env) for _, _, env in inputs]
            return [i for i in items if i is not None]
        upstream = sorted((x for s in sources for x in outputs.get(s, [])), key=lambda x: x[0])
        if not upstream:
            # A text turn enters after the audio-input node: the transcripts are its output.
            audio_entry = [s for s in sources if by_id[s].input.startswith("audio/")
                           and not any(e.target == s for e in plan.edges)]
            if audio_entry:
                items = [_item_from_input(env) for _, _, env in inputs
                         if env.event_type is EventType.TRANSCRIPT]
                return [i for i in items if i is not None]
        out: list[Item] = []
        for _, _, env in upstream:
            assert isinstance(env.payload, NodeOutput)
            out.append(item_from_output(env.payload))
        return out

    def _graph(self, node: ResolvedNode) -> Graph:
        key = (node.id, node.type, orjson.dumps(node.config.value, option=orjson.OPT_SORT_KEYS))
        graph = self._graphs.get(key)
        if graph is None:
            assert self.registry is not None
            decl = NodeDecl(node_id=node.id, type_name=node.type, config=dict(node.config.value))
            graph = build_graph(registry=self.registry, nodes=[decl], edges=[], entry=node.id)
            self._graphs[key] = graph
        return graph

    def _run(self, node: ResolvedNode, session_id: str, turn_id: str,
             feed: list[Item]) -> tuple[list[Item], str | None]:
        graph = self._graph(node)
        reports: list[Report] = []

        async def go() -> tuple[list[Item], str | None]:
            run = graph.start_turn(session_id=session_id, turn_id=turn_id,
                                   correlation_id=turn_id, reporter=reports.append)
            for item in feed:
                await run.feed(item)
            await run.end_input()
            outcome = await run.wait()
            items = [r.item for r in reports if isinstance(r, OutputReport)]
            return items, (outcome.error if outcome.status == "failed" else None)

        return self._loop.run_until_complete(go())

    def _diff_node(self, session_id: str, turn_id: str, node: ResolvedNode, feed: list[Item],
                   recorded: list[_Indexed], *, complete: bool) -> list[Divergence]:
        def div(pos: Position | None, expected: str, actual: str, message: str,
                diff: str | None = None) -> Divergence:
            return Divergence(kind=DivergenceKind.OUTPUT, session_id=session_id, turn_id=turn_id,
                              position=pos, node_id=node.id, expected=expected, actual=actual,
                              message=message, diff=diff)

        last_pos = recorded[-1][1] if recorded else None
        try:
            actual, failed = self._run(node, session_id, turn_id, feed)
        except NodeError as exc:
            return [div(last_pos, f"{len(recorded)} outputs", "node failed", f"{node.id}: {exc}")]
        if failed is not None:
            return [div(last_pos, f"{len(recorded)} outputs", "node failed", f"{node.id}: {failed}")]
        for n, (_, pos, env) in enumerate(recorded):
            assert isinstance(env.payload, NodeOutput)
            want, is_text = _render(item_from_output(env.payload))
            if n >= len(actual):
                return [div(pos, want, "no output",
                            f"re-executed {node.id} produced {len(actual)} outputs, "
                            f"the log has {len(recorded)}")]
            got, _ = _render(actual[n])
            if got != want:
                return [div(pos, want, got, f"output {n} of {node.id} differs when re-executed",
                            diff=text_diff(want, got) if is_text else None)]
        if complete and len(actual) > len(recorded):
            extra, _ = _render(actual[len(recorded)])
            return [div(last_pos, f"{len(recorded)} outputs", f"{len(actual)} outputs",
                        f"re-executed {node.id} produced more outputs than recorded (next: {extra})")]
        return []
