"""Shared helpers for the node tests: spec-shaped configs and a graph driver."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from streams.nodes import (
    AudioFrame,
    EdgeSpec,
    Graph,
    NodeDecl,
    ProviderPolicy,
    Report,
    TurnOutcome,
    build_graph,
    default_registry,
)
from streams.nodes.audio import chunk_pcm16

# The utterances of pipelines/specs/simple_v1.yaml, with the reply intent each must get.
UTTERANCES: dict[str, str] = {
    "turn on the kitchen lights": "lights_on",
    "what time is it": "time",
    "play some music": "music",
    "what is the weather like": "weather",
    "set a timer for five minutes": "timer",
    "stop": "stop",
}

RULES = [
    {"intent": "lights_on", "match_any": ["turn on the kitchen lights"],
     "reply": "Turning on the kitchen lights."},
    {"intent": "time", "match_any": ["what time is it"], "reply": "It is time to build something."},
    {"intent": "music", "match_any": ["play some music"], "reply": "Playing some music."},
    {"intent": "stop", "match_any": ["stop"], "reply": "Stopping."},
    {"intent": "weather", "match_any": ["what is the weather like"], "reply": "It looks sunny today."},
    {"intent": "timer", "match_any": ["set a timer for five minutes"],
     "reply": "Timer set for five minutes."},
]


def simple_graph(*, keywords: Sequence[str] = tuple(UTTERANCES)) -> Graph:
    """The simple/v1 chain (stt -> normalize -> respond -> tts) as the processor would build it."""
    nodes = [
        NodeDecl("stt", "stt.pocketsphinx", {"keywords": list(keywords), "emit_partials": True}),
        NodeDecl("normalize", "text.normalize", {"lowercase": True}),
        NodeDecl("respond", "respond.rules",
                 {"rules": RULES, "default_reply": "Sorry, I did not catch that."}),
        NodeDecl("tts", "tts.espeak_ng", {"voice": "en-us", "rate_wpm": 170},
                 ProviderPolicy(timeout_s=5.0, retries=1, degrade="text_only")),
    ]
    edges = [EdgeSpec("stt", "normalize", 16), EdgeSpec("normalize", "respond", 16),
             EdgeSpec("respond", "tts", 8)]
    return build_graph(registry=default_registry(), nodes=nodes, edges=edges, entry="stt")


async def run_audio(graph: Graph, pcm: bytes, *, turn_id: str = "t1") -> tuple[TurnOutcome, list[Report]]:
    reports: list[Report] = []
    run = graph.start_turn(session_id="s1", turn_id=turn_id, correlation_id="c1",
                           reporter=reports.append)
    for seq, chunk in enumerate(chunk_pcm16(pcm, sample_rate=16000, chunk_ms=20)):
        await run.feed(AudioFrame(chunk, 16000, seq))
    await run.end_input()
    return await run.wait(), reports


def espeak_children() -> list[int]:
    """PIDs of espeak-ng processes (zombies included: unreaped counts as left behind) we own."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # comm may contain spaces, so split after its closing parenthesis.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        del state
        if comm.startswith("espeak") and int(ppid) == me:
            found.append(int(entry.name))
    return found
