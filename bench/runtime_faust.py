"""The runtime benchmark's Faust peer: the transcript-only job written as a Faust agent.

    python -m bench.runtime_faust BOOTSTRAP SOURCE SINK COUNT BUNDLE OUT.json

One agent consumes the Avro-framed transcripts of SOURCE, normalises them and
picks the rule reply exactly as the RSPP nodes do (``normalize_text``,
``drop_fillers``, ``RulesNode.reply_for`` configured from the same bundle),
and produces a reply event to SINK. When COUNT records are done it writes
``{"count", "seconds", "rate"}`` (first to last record) to OUT and exits.
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


def main(argv: list[str]) -> None:
    import faust

    from pipelines.bundles import read_bundle
    from streams.abi import events as ev
    from streams.abi.codec import EventCodec
    from streams.nodes.respond import RulesConfig, RulesNode
    from streams.nodes.text import drop_fillers, normalize_text

    bootstrap, source, sink, count_s, bundle_path, out = argv
    count = int(count_s)
    bundle = read_bundle(Path(bundle_path))
    nodes = {n.type: n for n in bundle.resolved_spec.nodes}
    rules = RulesNode(
        RulesConfig.from_mapping(dict(nodes["respond.rules"].config.value), node_id="respond")
    )
    fillers = tuple(str(w) for w in nodes["text.drop_fillers"].config.value.get("words") or ())  # type: ignore[union-attr]
    codec = EventCodec()
    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    source_topic = app.topic(source, value_serializer="raw", key_serializer="raw")
    sink_topic = app.topic(sink, value_serializer="raw", key_serializer="raw")
    state: dict[str, Any] = {"n": 0, "first": None}

    @app.agent(source_topic)
    async def respond(stream: Any) -> None:
        async for key, value in stream.items():
            if state["first"] is None:
                state["first"] = time.perf_counter()
            event = codec.decode(value)
            payload = event.payload
            if isinstance(payload, ev.Transcript):
                text = drop_fillers(normalize_text(payload.text), fillers)
                reply = rules.reply_for(text)
                out_event = ev.Envelope.new(
                    ev.NodeOutput(output_seq=0, kind="reply", text=reply.text,
                                  content_type="text/plain", final=True),
                    tenant_id=event.tenant_id, session_id=event.session_id, seq=event.seq,
                )
                await sink_topic.send(key=key, value=codec.encode(out_event))
            state["n"] += 1
            if state["n"] >= count:
                await app.producer.flush()
                seconds = time.perf_counter() - state["first"]
                Path(out).write_text(
                    json.dumps({"count": count, "seconds": seconds, "rate": count / seconds})
                )
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main(sys.argv[1:])
