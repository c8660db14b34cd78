"""Traces through the SDK's in-memory exporter: session -> turn -> node, joined to the log.

The spans come from a real processor on a real broker. The session span is the trace's
root and its trace id is the log's ``correlation.trace_id``: the voice service's when it
sent one, else the one the processor made and stamped on the turn's events.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipelines.bundles import read_bundle
from streams.abi import events as ev
from streams.client import VoiceClient
from streams.nodes import synthesize_pcm16
from streams.observability import SessionTracer, tracing_requested
from streams.runtime.processor import ProcessorConfig
from streams.testing import ProcessorThread, read_log
from streams.topics import TopicLayout, apply_topics
from tests.observability.helpers import BUNDLE
from tests.runtime.procs import wait_for

PARTITIONS = 1


def _hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


@pytest.mark.kafka
def test_spans_nest_and_carry_the_logs_trace_id(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=PARTITIONS))
    exporter = InMemorySpanExporter()
    tracer = SessionTracer(exporter)
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap,
        prefix=prefix,
        bundle=read_bundle(BUNDLE),
        drain_grace_s=10,
        observer=tracer,
    )
    speech = synthesize_pcm16("play some music")
    with ProcessorThread(config) as running:
        stats = running.processor.stats
        client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
        traced = client.open_session("traced")
        bare = client.open_session("bare")
        bare.trace_id = None  # a service that sends no trace id: the processor makes one
        for s in (traced, bare):
            for i in range(0, len(speech), 640):
                s.send_audio(speech[i : i + 640])
            s.end_utterance()
        client.flush()
        wait_for(lambda: stats.turns_committed >= 2, 60, "two committed turns")
        for i in range(0, len(speech) // 2, 640):  # barge-in while the caller still speaks
            traced.send_audio(speech[i : i + 640])
        client.flush()
        wait_for(lambda: stats.turns_opened >= 3, 30, "the third turn to open")
        traced.cancel(reason="barge-in")
        traced.close()
        bare.close()
        client.flush()
        wait_for(lambda: stats.turns_aborted >= 1, 30, "the cancelled turn to abort")
        wait_for(lambda: len(running.processor.engine.turns) == 0, 30, "no open turn")
    tracer.shutdown()  # the processor's close ended and exported everything; stop the thread

    rows = [r.event for r in read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)]
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    sessions = {s.attributes["rspp.session.id"]: s for s in spans if s.name == "session"}  # type: ignore[index]
    assert set(sessions) == {"traced", "bare"}
    checked = 0
    for sid, root in sessions.items():
        assert root.parent is None  # the session span is the root of its trace
        opens = [e for e in rows if isinstance(e.payload, ev.TurnOpen) and e.session_id == sid]
        assert opens and {e.correlation.trace_id for e in opens} == {_hex(root)}
        turns = [s for s in spans if s.name == "turn" and s.attributes["rspp.session.id"] == sid]  # type: ignore[index]
        assert sorted(t.attributes["rspp.turn.id"] for t in turns) == sorted(  # type: ignore[index]
            e.turn_id for e in opens
        )
        for turn in turns:
            assert turn.parent is not None and turn.parent.span_id == root.context.span_id  # type: ignore[union-attr]
            nodes = [
                s
                for s in spans
                if s.parent is not None and s.parent.span_id == turn.context.span_id
            ]  # type: ignore[union-attr]
            if turn.attributes["rspp.turn.outcome"] == "committed":  # type: ignore[index]
                # Every node of the voice graph produced output: stt, respond, tts at least.
                assert len(nodes) >= 3 and all(n.name.startswith("node ") for n in nodes)
                assert all(_hex(n) == _hex(root) for n in nodes)
                assert any(n.attributes.get("gen_ai.operation.name") == "chat" for n in nodes)  # type: ignore[union-attr]
                assert all(n.start_time <= n.end_time for n in nodes)  # type: ignore[operator]
                checked += 1
    assert checked == 2
    # The logged trace id of the client's session is the one it sent.
    assert _hex(sessions["traced"]) == traced.trace_id
    # Cancel and abort are events of the cancelled turn's span.
    cancelled = [
        s
        for s in spans
        if s.name == "turn" and s.attributes["rspp.turn.outcome"] == "aborted"  # type: ignore[index]
    ]
    assert len(cancelled) == 1
    names = [e.name for e in cancelled[0].events]
    assert names.index("cancel") < names.index("abort")
    assert (
        cancelled[0]
        .events[names.index("abort")]
        .attributes["rspp.abort.reason"]
        .startswith(  # type: ignore[index,union-attr]
            "cancelled"
        )
    )
    assert all(s.parent is None or s.parent.span_id in by_id for s in spans)


def test_tracing_follows_the_standard_variables() -> None:
    assert not tracing_requested({})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing_requested(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
    )
    assert not tracing_requested(
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
    )
