"""The benchmark's Faust peer does the same job as the runtime: the same log per text turn.

The throughput comparison with faust-streaming is only fair if the peer appends
what the turn engine appends. Both are fed one final transcript of the bench's
transcript-only bundle; the records of the turn must match in type, node,
payload text and causation shape (ids and clocks aside).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.runtime_bench import transcript_only_bundle
from bench.runtime_faust import TextChain, turn_log
from pipelines.bundles import read_bundle
from pipelines.plans import TurnPlanResolver
from streams.abi import events as ev
from streams.nodes import default_registry
from streams.runtime.engine import TurnEngine
from streams.runtime.graphs import GraphCache
from streams.runtime.leases import LeaseBook
from streams.runtime.writer import EventWriter
from streams.topics import TopicLayout
from tests.runtime.test_engine_properties import CODEC, MemorySink

TEXT = "um what time is it"


def _shape(events: list[ev.Envelope]) -> list[tuple[object, ...]]:
    """(type, node, kind, text, position of the causing event) per event of the turn."""
    position = {e.event_id: i for i, e in enumerate(events)}
    return [
        (
            e.event_type.value,
            e.node_id,
            getattr(e.payload, "kind", None),
            getattr(e.payload, "text", None),
            position.get(e.correlation.causation_id or ""),
        )
        for e in events
    ]


def test_faust_peer_appends_the_runtime_log_of_a_text_turn(tmp_path: Path) -> None:
    bundle = read_bundle(transcript_only_bundle(tmp_path))
    trigger = ev.Envelope.new(
        ev.Transcript(kind=ev.TranscriptKind.FINAL, text=TEXT),
        tenant_id="acme",
        session_id="s1",
        seq=0,
    )

    sink = MemorySink()
    leases = LeaseBook("holder")
    leases.grant(0, 0)
    layout = TopicLayout(prefix="peer", partitions=1)
    engine = TurnEngine(
        writer=EventWriter(layout=layout, codec=CODEC, egress=sink, leases=leases),
        bundle=bundle,
        graphs=GraphCache(default_registry()),
        processor_id="holder",
        prefix="peer",
    )

    async def run() -> None:
        assert engine.apply(trigger, partition=0) is None
        for _ in range(200):
            await asyncio.sleep(0)
            engine.drain_reports()
            if engine.stats.turns_committed:
                return

    asyncio.run(run())
    assert engine.stats.turns_committed == 1
    runtime = [CODEC.decode(v) for t, _, v in sink.records if t == layout.log]
    runtime = [e for e in runtime if e.turn_id is not None]

    chain = TextChain(bundle)
    assert isinstance(trigger.payload, ev.Transcript)
    outputs = asyncio.run(chain.run(trigger, trigger.payload))
    records = turn_log(
        trigger,
        outputs,
        sessions={"s1": [0, 0]},
        resolver=TurnPlanResolver(),
        bundle=bundle,
        holder="holder",
        partition=0,
        entry=chain.entry,
        codec=CODEC,
    )
    peer = [CODEC.decode(value) for value, _ in records]
    assert len(peer) == len(runtime) == 9
    assert _shape(peer) == _shape(runtime)
