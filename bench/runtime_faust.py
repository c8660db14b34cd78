"""The runtime benchmark's Faust peer: the transcript-only job written as a Faust agent.

    python -m bench.runtime_faust BOOTSTRAP SOURCE SINK COUNT BUNDLE OUT.json [reply|log]

One agent consumes the Avro-framed transcripts of SOURCE, normalises them and
picks the rule reply exactly as the RSPP nodes do (``normalize_text``,
``drop_fillers``, ``RulesNode.reply_for`` configured from the same bundle).

* ``reply`` (default): one reply event per transcript to SINK, at-least-once.
  The least a Faust app could do; not the same log.
* ``log``: the same log RSPP writes for a text turn — the frozen plan
  (``TurnPlanResolver.freeze``), TURN_OPEN / TURN_ACTIVE / the recorded input /
  three NODE_OUTPUTs / OUTPUT_ACCEPTED / TURN_COMMIT / TURN_CLOSE with per-session
  seq, correlation and causation, routing headers — with the session state in a
  Faust table (its changelog is RSPP's snapshot topic) and
  ``processing_guarantee="exactly_once"``: the like-for-like peer.

When COUNT records are done it writes ``{"count", "seconds", "rate"}`` (first to
last record) to OUT and exits.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["main"]

PARTITIONS = 6  # bench.runtime_bench.PARTITIONS: a Faust table is co-partitioned with its source


def main(argv: list[str]) -> None:
    import faust

    from pipelines.bundles import read_bundle
    from streams.abi import events as ev
    from streams.abi.codec import EventCodec

    bootstrap, source, sink, count_s, bundle_path, out, *rest = argv
    mode = rest[0] if rest else "reply"
    # The app id prefixes Faust's own topics (table changelog, assignor); the parent passes a
    # scratch prefix so that `make bench` deletes them with its own.
    app_id = rest[1] if len(rest) > 1 else f"bench-faust-{uuid.uuid4().hex[:8]}"
    count = int(count_s)
    bundle = read_bundle(Path(bundle_path))
    chain = TextChain(bundle)
    codec = EventCodec()
    same_log = mode == "log"
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        # Topics say "raw" themselves; the session table (log mode) stores JSON.
        value_serializer="json",
        key_serializer="json",
        store="memory://",
        topic_allow_declare=same_log,  # the session table's changelog topic
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        processing_guarantee=os.environ.get("RSPP_FAUST_GUARANTEE", "at_least_once"),
    )
    source_topic = app.topic(source, value_serializer="raw", key_serializer="raw")
    sink_topic = app.topic(sink, value_serializer="raw", key_serializer="raw")
    state: dict[str, Any] = {"n": 0, "first": None}

    def done() -> None:
        seconds = time.perf_counter() - state["first"]
        Path(out).write_text(json.dumps({"count": count, "seconds": seconds, "rate": count / seconds}))
        os._exit(0)

    if not same_log:

        @app.agent(source_topic)
        async def respond(stream: Any) -> None:
            async for key, value in stream.items():
                if state["first"] is None:
                    state["first"] = time.perf_counter()
                event = codec.decode(value)
                payload = event.payload
                if isinstance(payload, ev.Transcript):
                    outputs = await chain.run(event, payload)
                    out_event = ev.Envelope.new(
                        ev.NodeOutput(output_seq=0, kind="reply", text=outputs[-1][1].text,
                                      content_type="text/plain", final=True),
                        tenant_id=event.tenant_id, session_id=event.session_id, seq=event.seq,
                    )
                    await sink_topic.send(key=key, value=codec.encode(out_event))
                state["n"] += 1
                if state["n"] >= count:
                    await app.producer.flush()
                    done()

    else:
        from pipelines.plans import TurnPlanResolver

        resolver = TurnPlanResolver()
        holder = f"faust-{uuid.uuid4().hex[:6]}"
        # session -> [next_seq, turns_done]: the state RSPP snapshots to its sessions topic.
        sessions = app.Table("sessions", default=lambda: [0, 0], partitions=PARTITIONS)

        @app.agent(source_topic)
        async def turns(stream: Any) -> None:
            async for event_ in stream.events():
                if state["first"] is None:
                    state["first"] = time.perf_counter()
                trigger = codec.decode(event_.value)
                p = trigger.payload
                if isinstance(p, ev.Transcript):
                    records = turn_log(
                        trigger, await chain.run(trigger, p), sessions=sessions,
                        resolver=resolver, bundle=bundle, holder=holder,
                        partition=event_.message.partition, entry=chain.entry, codec=codec,
                    )
                    for value, headers in records:
                        await sink_topic.send(key=event_.key, value=value, headers=headers,
                                              partition=event_.message.partition)
                state["n"] += 1
                if state["n"] >= count:
                    await app.producer.flush()
                    done()

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


class TextChain:
    """The bundle's text-entry nodes, built by the runtime's own registry, run one after another."""

    def __init__(self, bundle: Any) -> None:
        from streams.nodes import default_registry
        from streams.runtime.graphs import GraphCache
        from streams.runtime.planning import TurnPlanner

        plan = TurnPlanner(bundle=bundle, processor_id="faust", prefix="faust").warmup_plan()
        graph = GraphCache(default_registry()).for_plan(plan, text_input=True)
        self.entry = graph.entry
        self._factories = [(n, graph.graph.nodes[n]) for n in graph.graph.order]

    async def run(self, trigger: Any, transcript: Any) -> list[tuple[str, Any]]:
        """(node id, output item) in graph order for one final transcript."""
        from streams.nodes import NodeContext, TranscriptText

        items: list[Any] = [TranscriptText(transcript.text, True, transcript.confidence or 1.0)]
        outputs: list[tuple[str, Any]] = []
        for node_id, factory in self._factories:
            node = factory()
            ctx = NodeContext(session_id=trigger.session_id, turn_id="", node_id=node_id,
                              correlation_id=trigger.correlation.correlation_id)
            produced = [out for item in items async for out in node.process(item, ctx)]
            produced += [out async for out in node.flush(ctx)]
            node.close()
            outputs += [(node_id, out) for out in produced]
            items = produced
        return outputs


def turn_log(trigger: Any, outputs: list[tuple[str, Any]], *, sessions: Any, resolver: Any,
             bundle: Any, holder: str, partition: int, entry: str, codec: Any
             ) -> list[tuple[bytes, Any]]:
    """The records RSPP appends for one text turn (nine for normalize -> respond), built as its
    engine builds them: frozen plan, lifecycle, recorded input, node outputs, acceptance."""
    from pipelines.models import plan as pm
    from streams.abi import events as ev
    from streams.nodes import ReplyText

    sid = trigger.session_id
    next_seq, turns_done = sessions[sid]
    turn_id = f"{sid}-t{turns_done + 1}"
    corr = trigger.correlation.correlation_id
    plan = resolver.freeze(bundle, pm.plan_inputs(
        session=pm.session_snapshot(tenant_id=trigger.tenant_id, session_id=sid,
                                    pinned_bundle_digest=bundle.digest, next_seq=next_seq,
                                    last_epoch=1),
        turn=pm.turn_open_request(turn_id=turn_id, trigger="final_transcript", correlation_id=corr,
                                  opened_at_us=int(trigger.ts.timestamp() * 1_000_000)),
        lease=pm.lease_snapshot(epoch=1, holder=holder, partition=partition),
        routing=pm.routing_snapshot(topic_prefix="faust", partition=partition, processor_id=holder),
        policy_decisions=pm.NO_DECISIONS,
    ))
    records: list[tuple[bytes, Any]] = []

    def log(payload: Any, *, node: str | None = None, cause: str | None = None,
            event_id: str | None = None, ts: Any = None) -> str:
        nonlocal next_seq
        event = ev.Envelope.new(
            payload, tenant_id=trigger.tenant_id, session_id=sid, seq=next_seq, lease_epoch=1,
            turn_id=turn_id, correlation=ev.Correlation(correlation_id=corr, causation_id=cause),
            bundle_id=bundle.bundle_id, plan_hash=plan.plan_hash, node_id=node,
            event_id=event_id, ts=ts,
        )
        next_seq += 1
        records.append(codec.encode_with_headers(event))
        return event.event_id

    opened = log(ev.TurnOpen(plan_hash=plan.plan_hash, plan_json=plan.plan_json))
    log(ev.TurnActive(trigger="final_transcript"), cause=opened)
    cause = log(trigger.payload, event_id=trigger.event_id, ts=trigger.ts)
    for node_id, item in outputs:
        if isinstance(item, ReplyText):
            payload = ev.NodeOutput(output_seq=0, kind="reply", text=item.text,
                                    content_type="text/plain", final=True, latency_us=0)
        else:
            payload = ev.NodeOutput(output_seq=0, kind="transcript" if node_id == entry else "text",
                                    text=item.text, content_type="text/plain", final=item.final,
                                    latency_us=0)
        cause = log(payload, node=node_id, cause=cause)
    log(ev.OutputAccepted(output_event_id=cause), node=outputs[-1][0], cause=cause)
    commit = log(ev.TurnCommit(outputs=1), cause=cause)
    log(ev.TurnClose(outcome=ev.TurnOutcome.COMMITTED), cause=commit)
    sessions[sid] = [next_seq, turns_done + 1]
    return records


if __name__ == "__main__":
    main(sys.argv[1:])
