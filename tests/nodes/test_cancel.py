"""Cancellation: a cancelled turn stops promptly and leaves no espeak-ng child behind."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from streams.nodes import (
    AudioFrame,
    EdgeSpec,
    Graph,
    NodeDecl,
    NodeEnded,
    OutputReport,
    ReplyText,
    Report,
    TranscriptText,
    build_graph,
    default_registry,
    synthesize_pcm16,
)
from streams.nodes.audio import chunk_pcm16
from tests.nodes.conftest import UTTERANCES, espeak_children, run_audio, simple_graph

# Long enough that espeak-ng is certainly still running when we cancel (~seconds of work).
LONG_REPLY = "This reply is long enough to keep the synthesiser busy for a while. " * 60


def _tts_graph() -> Graph:
    return build_graph(
        registry=default_registry(),
        nodes=[NodeDecl("tts", "tts.espeak_ng", {"voice": "en"})],
        edges=[], entry="tts",
    )


async def _until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def test_cancel_mid_tts_kills_espeak_promptly() -> None:
    async def scenario() -> tuple[float, list[Report]]:
        reports: list[Report] = []
        run = _tts_graph().start_turn(session_id="s", turn_id="t", correlation_id="c",
                                      reporter=reports.append)
        await run.feed(ReplyText(LONG_REPLY, "long"))
        await _until(lambda: bool(espeak_children()))
        start = time.perf_counter()
        run.cancel()
        outcome = await run.wait()
        elapsed = time.perf_counter() - start
        assert outcome.status == "cancelled"
        return elapsed, reports

    before = espeak_children()
    elapsed, reports = asyncio.run(scenario())
    print(f"cancel mid-TTS returned in {elapsed * 1000:.1f} ms")
    assert elapsed < 0.1
    assert espeak_children() == before == []
    assert not [r for r in reports if isinstance(r, OutputReport)]  # nothing spoken after cancel
    assert [r for r in reports if isinstance(r, NodeEnded)] == [NodeEnded("tts", "cancelled", 0)]


def test_cancelling_the_waiting_task_cancels_the_turn() -> None:
    # The processor may cancel the task awaiting the turn instead of calling cancel().
    async def scenario() -> float:
        run = _tts_graph().start_turn(session_id="s", turn_id="t", correlation_id="c")
        await run.feed(ReplyText(LONG_REPLY, "long"))
        waiter = asyncio.create_task(run.wait())
        await _until(lambda: bool(espeak_children()))
        start = time.perf_counter()
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        return time.perf_counter() - start

    elapsed = asyncio.run(scenario())
    assert elapsed < 0.1
    assert espeak_children() == []


def test_cancel_mid_stt_stops_promptly_and_returns_the_decoder() -> None:
    graph = simple_graph()
    pcm = synthesize_pcm16("set a timer for five minutes") * 3

    async def scenario() -> tuple[float, list[Report]]:
        reports: list[Report] = []
        run = graph.start_turn(session_id="s", turn_id="t", correlation_id="c",
                               reporter=reports.append)
        for seq, chunk in enumerate(chunk_pcm16(pcm, sample_rate=16000)):
            await run.feed(AudioFrame(chunk, 16000, seq))
            if seq == 60:  # 1.2 s into the audio: mid-utterance, partials already out
                break
        start = time.perf_counter()
        run.cancel()
        outcome = await run.wait()
        assert outcome.status == "cancelled"
        return time.perf_counter() - start, reports

    elapsed, reports = asyncio.run(scenario())
    print(f"cancel mid-STT returned in {elapsed * 1000:.1f} ms")
    assert elapsed < 0.05
    ended = {r.node_id: r.status for r in reports if isinstance(r, NodeEnded)}
    assert ended == dict.fromkeys(("stt", "normalize", "respond", "tts"), "cancelled")
    assert not [r for r in reports if isinstance(r, OutputReport)
                and isinstance(r.item, TranscriptText) and r.item.final]
    # The decoder went back to the pool clean: the next turn recognises normally.
    _, after = asyncio.run(run_audio(graph, synthesize_pcm16("stop"), turn_id="next"))
    assert [r.item.text for r in after if isinstance(r, OutputReport) and r.node_id == "stt"
            and isinstance(r.item, TranscriptText) and r.item.final] == ["stop"]


def test_cancel_node_ends_downstream_cleanly() -> None:
    # Cancel only "respond": tts gets an end marker and finishes; stt/normalize complete.
    graph = simple_graph()
    pcm = synthesize_pcm16(next(iter(UTTERANCES)))

    async def scenario() -> tuple[str, list[Report]]:
        reports: list[Report] = []
        run = graph.start_turn(session_id="s", turn_id="t", correlation_id="c",
                               reporter=reports.append)
        run.cancel_node("respond")
        for seq, chunk in enumerate(chunk_pcm16(pcm, sample_rate=16000)):
            await run.feed(AudioFrame(chunk, 16000, seq))
        await run.end_input()
        outcome = await run.wait()
        return outcome.status, reports

    status, reports = asyncio.run(scenario())
    assert status == "completed"
    ended = {r.node_id: r.status for r in reports if isinstance(r, NodeEnded)}
    assert ended == {"stt": "done", "normalize": "done", "respond": "cancelled", "tts": "done"}
    assert not [r for r in reports if isinstance(r, OutputReport) and r.node_id in ("respond", "tts")]
    assert [r for r in reports if isinstance(r, OutputReport) and r.node_id == "normalize"]


def test_edge_specs_are_kept() -> None:
    graph = simple_graph()
    assert EdgeSpec("respond", "tts", 8) in graph.edges
