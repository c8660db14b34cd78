"""One valid example of every payload type (the golden events of the ABI tests)."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.abi import events as ev

TS = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)

PAYLOADS: list[ev.Payload] = [
    ev.AudioChunk(codec="pcm_s16le", sample_rate=16000, channels=1, seq=7, audio=b"\x00\x01" * 160),
    ev.EndOfUtterance(last_chunk_seq=7, reason="vad"),
    ev.Transcript(kind=ev.TranscriptKind.FINAL, text="hello", confidence=0.91, language="en-US"),
    ev.SessionOpen(transport="livekit", locale="en-US"),
    ev.SessionClose(reason="hangup"),
    ev.Admit(),
    ev.Reject(reason="tenant over quota"),
    ev.Defer(reason="warming up", retry_after_ms=250),
    ev.TurnOpen(plan_hash="ab" * 32, plan_json='{"nodes":[]}'),
    ev.TurnActive(trigger="end_of_utterance"),
    ev.TurnCommit(outputs=2),
    ev.TurnAbort(reason="cancelled"),
    ev.TurnClose(outcome=ev.TurnOutcome.ABORTED),
    ev.Cancel(scope=ev.CancelScope.TURN, target="turn-1", reason="barge_in"),
    ev.NodeOutput(output_seq=0, kind="audio", data=b"\x01\x02", content_type="audio/L16", final=True),
    ev.NodeError(error_kind=ev.NodeErrorKind.TIMEOUT, message="stt timed out", fallback=ev.FallbackAction.FALLBACK),
    ev.FallbackDecision(
        action=ev.FallbackAction.DEGRADE, what="quality:tts", from_value="hd", to_value="standard", reason="p99"
    ),
    ev.OutputAccepted(output_event_id="e-1"),
    ev.PlaybackStarted(output_event_id="e-1", offset_ms=0),
    ev.LeaseGranted(partition=3, epoch=8, holder="proc-a"),
    ev.Shed(reason="queue_full", rule="drop_oldest", defaulting_source="profile:low_latency", lane=ev.Lane.DATA, shed_count=12),
    ev.Divergence(check="plan_hash", expected="aa", actual="bb", offset=41),
    ev.Telemetry(name="jitter_ms", value=3.5, unit="ms"),
    ev.DeadLetter(
        reason="unknown schema id 9",
        original_topic="p.data",
        original_partition=1,
        original_offset=99,
        original_bytes=b"\x00\x00\x00\x00\x09",
        original_headers=(ev.Header(key="rspp_lane", value=b"data"), ev.Header(key="x", value=None)),
    ),
]


def envelope(payload: ev.Payload, *, seq: int = 1) -> ev.Envelope:
    return ev.Envelope.new(
        payload,
        tenant_id="tenant-a",
        session_id="sess-1",
        seq=seq,
        lease_epoch=4,
        turn_id="turn-1",
        correlation=ev.Correlation(correlation_id="corr-1", causation_id="e-0", trace_id="0" * 32),
        bundle_id="bundle-1",
        plan_hash="ab" * 32,
        node_id="stt",
        event_id=f"evt-{seq}",
        ts=TS,
    )
