"""Real parts end to end: espeak-ng speech -> pocketsphinx -> normalize -> rules -> espeak-ng."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.nodes import AudioOut, OutputReport, ReplyText, TranscriptText, synthesize_pcm16
from streams.nodes.text import normalize_text
from tests.nodes.conftest import UTTERANCES, run_audio, simple_graph

GRAPH = simple_graph()  # built once per module: the decoder model loads once


@pytest.mark.parametrize("utterance", list(UTTERANCES))
def test_spoken_utterance_is_recognised_answered_and_spoken(utterance: str) -> None:
    pcm = synthesize_pcm16(utterance, voice="en", rate=160)
    outcome, reports = asyncio.run(run_audio(GRAPH, pcm))

    assert outcome.status == "completed"
    outputs = [r for r in reports if isinstance(r, OutputReport)]
    by_node = {n: [r for r in outputs if r.node_id == n] for n in ("stt", "normalize", "respond", "tts")}

    finals = [r.item for r in by_node["normalize"]
              if isinstance(r.item, TranscriptText) and r.item.final]
    assert [f.text for f in finals] == [normalize_text(utterance)]

    replies = [r.item for r in by_node["respond"]]
    assert len(replies) == 1
    assert isinstance(replies[0], ReplyText)
    assert replies[0].intent == UTTERANCES[utterance]

    audio = [r.item for r in by_node["tts"]]
    assert all(isinstance(a, AudioOut) and a.sample_rate == 16000 for a in audio)
    assert [a.final for a in audio if isinstance(a, AudioOut)] == [False] * (len(audio) - 1) + [True]
    assert [a.seq for a in audio if isinstance(a, AudioOut)] == list(range(len(audio)))
    assert all(len(a.pcm) == 640 for a in audio[:-1] if isinstance(a, AudioOut))
    assert len(audio) > 25  # more than half a second of speech

    # Latency figures for the report: STT final after end of input, TTS first chunk.
    stt_final = next(r for r in by_node["stt"] if isinstance(r.item, TranscriptText) and r.item.final)
    tts_first = by_node["tts"][0]
    print(f"{utterance!r}: stt flush {(stt_final.end_ns - stt_final.start_ns) / 1e6:.1f} ms, "
          f"tts first chunk {(tts_first.end_ns - tts_first.start_ns) / 1e6:.1f} ms")


def test_reply_audio_is_recognisable_speech() -> None:
    # The TTS node's own output decodes back to its reply: the resampled audio is real speech.
    graph = simple_graph(keywords=["playing some music", *UTTERANCES])
    pcm = synthesize_pcm16("play some music")
    _, reports = asyncio.run(run_audio(graph, pcm))
    reply_pcm = b"".join(r.item.pcm for r in reports
                         if isinstance(r, OutputReport) and isinstance(r.item, AudioOut))
    _, echo = asyncio.run(run_audio(graph, reply_pcm, turn_id="t2"))
    heard = [r.item.text for r in echo if isinstance(r, OutputReport) and r.node_id == "stt"
             and isinstance(r.item, TranscriptText) and r.item.final]
    assert heard == ["playing some music"]


def test_recognition_is_deterministic_across_turns() -> None:
    pcm = synthesize_pcm16("what is the weather like")

    def transcript() -> list[tuple[str, bool]]:
        _, reports = asyncio.run(run_audio(GRAPH, pcm))
        return [(r.item.text, r.item.final) for r in reports
                if isinstance(r, OutputReport) and r.node_id == "stt"
                and isinstance(r.item, TranscriptText)]

    first = transcript()
    assert first == transcript()
    assert first[-1] == ("what is the weather like", True)


def test_synthesis_is_bit_identical() -> None:
    start = time.perf_counter()
    assert synthesize_pcm16("stop") == synthesize_pcm16("stop")
    assert time.perf_counter() - start < 2.0
