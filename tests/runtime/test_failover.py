"""Kill -9 of ``rspp run`` mid-turn, then a restart: exactly once, epoch + 1, failover aborts.

The processor is a real subprocess. It is SIGKILLed while turns are in flight
(an audio utterance half streamed, text turns' speech being synthesised), so
its open transaction is left behind. The restart uses the same ``--id`` —
as a supervisor restarts a crashed instance — so its transactional producer
fences the dead one's transaction at once and its static group membership
takes the partitions straight back. The log must then hold every sent event
exactly once (or the DLQ must), sound lifecycles, the interrupted turns closed
by the new holder with ``TURN_ABORT{reason="failover"}``, and epoch + 1.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from replay.logcheck import check_log
from streams.abi import events as ev
from streams.client import VoiceClient, VoiceSession
from streams.nodes import synthesize_pcm16
from streams.testing import read_dlq, read_log
from streams.topics import TopicLayout, apply_topics
from tests.runtime.procs import LogTail, RsppProcess, accounted

pytestmark = pytest.mark.kafka

PARTITIONS = 4
# The quickstart bundle: its TTS paces audio like playback, so replies are in flight for a while.
BUNDLE = Path(__file__).resolve().parents[2] / "pipelines/examples/simple_livekit_voice_v1/bundle.json"
UTTERANCES = ["what time is it", "play some music", "turn on the kitchen lights", "stop"]
CHUNK = 640  # 20 ms of 16 kHz PCM16


def _closed(tail: LogTail, kind: ev.EventType) -> int:
    return tail.counts[kind]


def test_kill_nine_mid_turn_then_restart_is_exactly_once(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=PARTITIONS))
    speech = synthesize_pcm16("set a timer for five minutes")
    proc = RsppProcess(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=BUNDLE, holder="fo-a",
        workdir=tmp_path, partitions=PARTITIONS,
        extra=("--static", "--session-timeout-ms", "6000"),
    )
    tail = LogTail(kafka_bootstrap, prefix, partitions=PARTITIONS)
    client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
    sent: list[str] = []

    def send(event: ev.Envelope) -> None:
        sent.append(event.event_id)

    try:
        proc.start()
        tail.until(lambda t: len(t.grants) >= PARTITIONS, 30, "the first leases")
        sessions = [VoiceSession(client=client, session_id=f"{prefix[-10:]}-s{n}") for n in range(8)]
        for s in sessions:
            send(s.publish(ev.SessionOpen(transport="sdk", locale="en-US")))
            send(s.send_transcript(UTTERANCES[0]))
        client.flush()
        tail.until(lambda t: _closed(t, ev.EventType.TURN_COMMIT) >= 8, 30, "round 1 commits")

        # Round 2: two callers stream half an utterance (their turns stay open: no end yet),
        # the others' text turns synthesise speech. Kill while that is in flight.
        talkers, texters = sessions[:2], sessions[2:]
        half = len(speech) // 2 // CHUNK * CHUNK
        for s in talkers:
            for i in range(0, half, CHUNK):
                send(s.send_audio(speech[i : i + CHUNK]))
        for n, s in enumerate(texters):
            send(s.send_transcript(UTTERANCES[(n + 1) % len(UTTERANCES)]))
        client.flush()
        talker_ids = {s.session_id for s in talkers}

        def in_flight(t: LogTail) -> bool:
            open_sessions = {r.event.session_id for r in t.open_turns.values()}
            speaking = any(t.audio_outputs[turn] for turn in t.open_turns)
            return talker_ids <= open_sessions and speaking

        tail.until(in_flight, 20, "open turns: half-streamed utterances and replies being spoken")
        proc.kill()
        open_at_kill = set(tail.open_turns)
        proc.start()
        tail.until(lambda t: len(t.grants) >= 2 * PARTITIONS, 30, "the restart's leases")

        # Round 3: the talkers finish their utterance (a new turn), everyone speaks once more.
        for s in talkers:
            for i in range(half, len(speech), CHUNK):
                send(s.send_audio(speech[i : i + CHUNK]))
            send(s.end_utterance())
        for s in texters:
            send(s.send_transcript(UTTERANCES[3]))
        client.flush()
        round3 = _closed(tail, ev.EventType.TURN_COMMIT) + len(sessions)
        tail.until(
            lambda t: _closed(t, ev.EventType.TURN_COMMIT) >= round3, 30, "round 3 commits"
        )
        for s in sessions:
            send(s.close())
        client.flush()
        tail.until(
            lambda t: _closed(t, ev.EventType.SESSION_CLOSE) >= len(sessions) and not t.open_turns,
            30,
            "every session closed, no turn open",
        )
        summary = proc.stop()
    finally:
        proc.ensure_dead()
        tail.close()

    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    assert check_log(rows) == []
    # Exactly once: every sent event recorded once (or dead-lettered), none twice.
    dlq = read_dlq(kafka_bootstrap, prefix, partitions=PARTITIONS)
    missing, duplicated = accounted(sent, rows, dlq)
    assert (missing, duplicated) == (set(), set())
    # The new holder has epoch + 1 on every partition.
    grants: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for r in rows:
        if isinstance(r.event.payload, ev.LeaseGranted):
            grants[r.partition].append((r.event.payload.epoch, r.event.payload.holder))
    assert dict(grants) == {p: [(1, "fo-a"), (2, "fo-a")] for p in range(PARTITIONS)}
    # The turns in flight at the kill were closed by the new holder as failovers, at epoch 2.
    aborts = {
        r.event.turn_id: r.event for r in rows
        if isinstance(r.event.payload, ev.TurnAbort) and r.event.payload.reason == "failover"
    }
    opened_at = {
        r.event.turn_id: r.event.lease_epoch for r in rows
        if r.event.event_type is ev.EventType.TURN_OPEN
    }
    talker_turns = {t for t in open_at_kill if any(t.startswith(f"{s}-t") for s in talker_ids)}
    assert len(talker_turns) == 2 and talker_turns <= set(aborts)
    # At least one failed-over turn was speaking: audio accepted at epoch 1, none after.
    speaking = {
        r.event.turn_id for r in rows
        if r.event.turn_id in aborts and r.event.event_type is ev.EventType.OUTPUT_ACCEPTED
    }
    assert speaking - talker_turns
    for turn_id, abort in aborts.items():
        assert opened_at[turn_id] == 1 and abort.lease_epoch == 2, turn_id
    # Nothing of a failed-over turn was written at epoch 2 except its abort and close.
    for r in rows:
        if r.event.turn_id in aborts and r.event.lease_epoch == 2:
            assert r.event.event_type in (ev.EventType.TURN_ABORT, ev.EventType.TURN_CLOSE), r
    # The restart did the rest of the work: round 3's turns (the talkers' new ones included).
    assert summary["turns_committed"] >= len(sessions)
