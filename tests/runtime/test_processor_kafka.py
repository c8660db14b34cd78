"""The processor on a real broker: many sessions, barge-in, exactly-once log, DLQ accounting."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.bundles import read_bundle
from pipelines.models.resolved import PipelineBundle
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.client import VoiceClient
from streams.nodes import synthesize_pcm16
from streams.runtime.processor import ProcessorConfig
from streams.testing import ProcessorThread, read_dlq, read_log
from streams.topics import TopicLayout, apply_topics

pytestmark = pytest.mark.kafka

PARTITIONS = 4
BUNDLE = (
    Path(__file__).resolve().parents[2] / "pipelines" / "bundles" / "voice_assistant_bundle_v1.json"
)
UTTERANCES = ["what time is it", "play some music", "turn on the kitchen lights", "stop"]


@pytest.fixture(scope="module")
def bundle() -> PipelineBundle:
    return read_bundle(BUNDLE)


@pytest.fixture(scope="module")
def speech() -> bytes:
    return synthesize_pcm16("set a timer for five minutes")


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_twenty_sessions_with_barge_in(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], bundle: PipelineBundle, speech: bytes
) -> None:
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=PARTITIONS))
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=bundle, drain_grace_s=10
    )
    sent: set[str] = set()
    with ProcessorThread(config) as running:
        client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
        sessions = [client.open_session(f"s{n:02d}") for n in range(20)]
        client.flush()
        # Telemetry does not open a session (only the caller's words do): on its own topic it
        # could overtake the SESSION_OPEN and be dead-lettered, so send it once they are open.
        _wait_for(lambda: len(running.processor.engine.sessions) >= 20, 30, "the sessions to open")
        for s in sessions:
            sent.add(s.telemetry("jitter_ms", 3.5).event_id)
        for round_ in range(3):
            for n, s in enumerate(sessions):
                if n < 5 and round_ == 1:
                    # Barge-in mid-utterance: half the audio, then a cancel on the control lane.
                    for i in range(0, len(speech) // 2, 640):
                        sent.add(s.send_audio(speech[i : i + 640]).event_id)
                    client.flush()
                    # The cancel must find this turn open: control overtakes data that is still
                    # queued (by design), so wait until the audio has been applied (+20: the opens).
                    _wait_for(
                        lambda: running.processor.stats.events_in >= len(sent) + 20,
                        30,
                        "the barge-in's audio to be applied",
                    )
                    sent.add(s.cancel(reason="barge-in").event_id)
                    continue
                sent.add(s.send_transcript(UTTERANCES[(n + round_) % len(UTTERANCES)]).event_id)
            client.flush()
            # Let each round's turns finish: one turn per session at a time.
            _wait_for(
                lambda r=round_: (
                    running.processor.stats.turns_committed + running.processor.stats.turns_aborted
                    >= 20 * (r + 1)
                ),
                60,
                f"round {round_} turns to close",
            )
        for s in sessions:
            sent.add(s.close().event_id)
        client.flush()
        _wait_for(
            lambda: running.processor.stats.events_in >= len(sent) + 20, 30, "all ingress applied"
        )
    stats = running.stats
    assert stats is not None
    assert (stats.turns_opened, stats.turns_aborted, stats.turns_committed) == (60, 5, 55)

    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    assert check_log(rows) == []
    logged_ids = {r.event.event_id for r in rows}
    dlq = read_dlq(kafka_bootstrap, prefix, partitions=PARTITIONS)
    # Every ingress event is either recorded in the log or dead-lettered.
    assert not dlq, [getattr(r.event.payload, "reason", r.event.payload) for r in dlq]
    session_opens = {
        r.event.event_id for r in rows if r.event.event_type is ev.EventType.SESSION_OPEN
    }
    assert len(session_opens) == 20
    assert sent <= logged_ids
    # The cancelled turns: aborted with the cancel's reason, no egress after the cancel.
    aborted = [r.event for r in rows if isinstance(r.event.payload, ev.TurnAbort)]
    assert len(aborted) == 5 and all(a.payload.reason.startswith("cancelled") for a in aborted)  # type: ignore[attr-defined]
    # Each committed turn accepted audio and started playback once.
    playback = [r for r in rows if r.event.event_type is ev.EventType.PLAYBACK_STARTED]
    assert len(playback) == 55
    leases = [r.event.payload for r in rows if isinstance(r.event.payload, ev.LeaseGranted)]
    assert sorted(lease.partition for lease in leases) == list(range(PARTITIONS))


def test_bad_input_goes_to_the_dlq_and_the_processor_keeps_going(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], bundle: PipelineBundle
) -> None:
    from confluent_kafka import Producer

    prefix = unique_prefix()
    layout = TopicLayout(prefix=prefix, partitions=2)
    apply_topics(kafka_bootstrap, layout)
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=bundle, drain_grace_s=5
    )
    raw = Producer({"bootstrap.servers": kafka_bootstrap})
    bad = [
        (b"\x00\x00\x00", [("rspp_lane", b"data"), ("rspp_session", b"x1")]),  # truncated frame
        (b"not avro at all", [("rspp_lane", b"data"), ("rspp_session", b"x2")]),  # wrong magic byte
        (
            b"\x00\x7f\xff\xff\xff\x00",
            [("rspp_lane", b"data"), ("rspp_session", b"x3")],
        ),  # unknown schema id
        (b"whatever", []),  # no headers: judged by its body, which is garbage
    ]
    with ProcessorThread(config) as running:
        for value, headers in bad:
            raw.produce(layout.data, value, key=b"k", headers=headers)
        raw.flush(10)
        client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix)
        good = client.open_session("good")
        good.send_transcript("play some music")
        client.flush()
        _wait_for(lambda: running.processor.stats.turns_committed >= 1, 30, "the good turn")
        _wait_for(lambda: running.processor.dlq_count >= len(bad), 10, "dead letters")
    dlq = read_dlq(kafka_bootstrap, prefix, partitions=2)
    reasons = sorted(r.event.payload.reason for r in dlq)  # type: ignore[attr-defined]
    assert len(dlq) == len(bad)
    assert any(r.startswith("bad_framing") for r in reasons)
    assert any(r.startswith("unknown_schema") for r in reasons)
    sessions = sorted(r.event.session_id for r in dlq)
    assert sessions == ["__unrouted__", "x1", "x2", "x3"]  # the hint names the session, if any
    assert {r.event.tenant_id for r in dlq} == {"__system__"}  # no tenant was established
    originals = {r.event.payload.original_bytes for r in dlq}  # type: ignore[attr-defined]
    assert originals == {value for value, _ in bad}
    assert check_log(read_log(kafka_bootstrap, prefix, partitions=2)) == []
