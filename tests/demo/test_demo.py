"""The main job end to end on a real broker: spoken utterances are recognised and answered."""

from __future__ import annotations

import wave
from typing import Any

import pytest

from replay.logcheck import check_log
from streams.abi import events as ev
from streams.demo import load_scenario
from streams.testing import read_log

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_demo_recognises_answers_and_fences_barge_in(
    kafka_bootstrap: str, demo_recording: Any
) -> None:
    result = demo_recording
    scenario = load_scenario()

    # Every utterance was recognised well enough for the responder to pick the scripted reply.
    heard = [r for c in result.callers for r in c.replies]
    assert len(heard) == 2 * sum(1 for u in scenario.utterances if not u.barge_in)
    assert result.mismatched_replies == []

    barge_ins = sum(1 for u in scenario.utterances if u.barge_in) * 2
    assert result.turns_aborted == barge_ins
    assert result.turns_committed == 2 * len(scenario.utterances) - barge_ins

    rows = read_log(kafka_bootstrap, result.prefix, partitions=result.partitions)
    assert check_log(rows) == []
    # A cancelled turn shows no output accepted after its cancel, and its abort names the cancel.
    cancelled = {r.event.turn_id for r in rows if r.event.event_type is ev.EventType.CANCEL}
    assert len(cancelled) == barge_ins
    for turn in cancelled:
        events = [r.event for r in rows if r.event.turn_id == turn]
        at = next(i for i, e in enumerate(events) if e.event_type is ev.EventType.CANCEL)
        after = {e.event_type for e in events[at:]}
        assert (
            ev.EventType.OUTPUT_ACCEPTED not in after and ev.EventType.PLAYBACK_STARTED not in after
        )
        assert ev.EventType.TURN_ABORT in after
        # The reply was interrupted: some audio had been accepted before the cancel.
        assert ev.EventType.PLAYBACK_STARTED in {e.event_type for e in events[:at]}

    assert len(result.wav_files) == 2 * len(scenario.utterances)
    with wave.open(str(result.wav_files[0]), "rb") as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1 and wav.getnframes() > 1600
