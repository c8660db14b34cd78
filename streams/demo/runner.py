"""Orchestrates `rspp demo`: processor + simulated callers + live view + the checks at the end."""

from __future__ import annotations

import asyncio
import time
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.bundles import read_bundle
from streams.adapters import AdapterConfig, LogFollower, ReferenceAdapter, SessionView, TurnView
from streams.demo.scenario import EXAMPLE_DIR, Scenario, Utterance
from streams.errors import StreamsError
from streams.nodes import synthesize_pcm16
from streams.runtime.processor import ProcessorConfig
from streams.testing import ProcessorThread
from streams.topics import TopicLayout, apply_topics

__all__ = ["CallerResult", "DemoOptions", "DemoResult", "run_demo"]

FRAME = 640  # 20 ms of 16 kHz mono PCM16
SAMPLE_RATE = 16000


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    sessions: int = 8
    turns: int = 3
    fast: bool = False
    prefix: str | None = None
    partitions: int = 4
    out_dir: Path = Path("out")
    bundle: Path = EXAMPLE_DIR / "bundle.json"


@dataclass(slots=True)
class CallerResult:
    session_id: str
    turns: list[str] = field(default_factory=list)
    replies: list[tuple[str, str, str]] = field(default_factory=list)  # (turn, heard, expected)
    first_audio_ms: list[float] = field(default_factory=list)
    fence_ms: list[float] = field(default_factory=list)
    barge_ins: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    prefix: str
    bootstrap: str
    partitions: int
    out_dir: Path
    wav_files: tuple[Path, ...]
    callers: tuple[CallerResult, ...]
    turns_committed: int
    turns_aborted: int
    seconds: float

    @property
    def mismatched_replies(self) -> list[tuple[str, str, str]]:
        return [r for c in self.callers for r in c.replies if r[1] != r[2]]


def _has_new_turn(view: SessionView, known: set[str]) -> Callable[[], bool]:
    return lambda: bool(set(view.turns) - known)


def _speaking(turn: TurnView) -> Callable[[], bool]:
    return lambda: turn.first_audio_at is not None


def _closed(turn: TurnView) -> Callable[[], bool]:
    return lambda: turn.closed_at is not None


class _Callers:
    """The simulated voice callers: speak, wait for the reply, sometimes talk over it."""

    def __init__(
        self,
        *,
        adapter: ReferenceAdapter,
        follower: LogFollower,
        speech: dict[str, bytes],
        fast: bool,
    ) -> None:
        self.adapter = adapter
        self.follower = follower
        self.speech = speech
        self.fast = fast

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            await asyncio.sleep(0.01)
        return False

    async def call(self, session_id: str, script: tuple[Utterance, ...]) -> CallerResult:
        result = CallerResult(session_id=session_id)
        self.adapter.open_session(session_id)
        known: set[str] = set()
        for k, utterance in enumerate(script):
            pcm = self.speech[utterance.text]
            started = time.monotonic()
            for n, offset in enumerate(range(0, len(pcm), FRAME)):
                self.adapter.send_audio(session_id, pcm[offset : offset + FRAME])
                if n % 25 == 0:
                    self.adapter.telemetry(session_id, "jitter_ms", 2.0 + (k + n) % 5, unit="ms")
                if not self.fast:
                    # Real-time pace without drift: sleep until this frame's slot.
                    await asyncio.sleep(max(0.0, started + (n + 1) * 0.02 - time.monotonic()))
            eou = time.monotonic()
            self.adapter.end_utterance(session_id)
            view = self.follower.session(session_id)
            await self._wait(_has_new_turn(view, known), 15)
            new = [t for t in view.turns if t not in known]
            if not new:
                raise StreamsError(f"{session_id}: no turn opened for {utterance.text!r}")
            turn_id = new[-1]
            known.add(turn_id)
            result.turns.append(turn_id)
            turn = view.turns[turn_id]
            if utterance.barge_in:
                await self._wait(_speaking(turn), 15)
                await asyncio.sleep(0.3)  # the caller talks over the reply
                cancel_at = time.monotonic()
                self.adapter.barge_in(session_id)
                result.barge_ins += 1
                await self._wait(_closed(turn), 15)
                if turn.closed_at is not None and turn.abort_reason is not None:
                    result.fence_ms.append((turn.closed_at - cancel_at) * 1000.0)
            else:
                await self._wait(_closed(turn), 30)
            if turn.first_audio_at is not None:
                result.first_audio_ms.append((turn.first_audio_at - eou) * 1000.0)
            if turn.abort_reason is None:
                result.replies.append((turn_id, turn.reply, utterance.reply))
            if not self.fast:
                await asyncio.sleep(0.3)
        self.adapter.close_session(session_id)
        return result


def _write_wavs(follower: LogFollower, out_dir: Path) -> tuple[Path, ...]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with follower.lock:
        views = list(follower.sessions.values())
    for view in views:
        for turn in view.turns.values():
            if not turn.audio:
                continue
            path = out_dir / f"{turn.turn_id}.wav"
            with wave.open(str(path), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(SAMPLE_RATE)
                wav.writeframes(bytes(turn.audio))
            written.append(path)
    return tuple(sorted(written))


def run_demo(
    options: DemoOptions,
    *,
    bootstrap: str,
    scenario: Scenario,
    on_tick: Callable[[LogFollower], None] | None = None,
) -> DemoResult:
    """Run the whole scenario against a real broker; returns what happened."""
    started = time.monotonic()
    prefix = options.prefix or f"demo-{uuid.uuid4().hex[:8]}"
    apply_topics(bootstrap, TopicLayout(prefix=prefix, partitions=options.partitions))
    bundle = read_bundle(options.bundle)
    speech = {u.text: synthesize_pcm16(u.text) for u in scenario.utterances}
    processor = ProcessorThread(
        ProcessorConfig(
            bootstrap=bootstrap, prefix=prefix, bundle=bundle, processor_id="demo-processor-1"
        )
    ).start()
    # Callers speak once the processor holds its partitions: what the demo measures is turn
    # latency, not the first group join.
    deadline = time.monotonic() + 60
    while (
        len(processor.processor.leases.partitions) < options.partitions
        and time.monotonic() < deadline
    ):
        if processor.error is not None:
            raise processor.error
        time.sleep(0.05)
    adapter = ReferenceAdapter(
        AdapterConfig(
            bootstrap=bootstrap, prefix=prefix, tenant_id="demo", partitions=options.partitions
        )
    )
    callers = _Callers(adapter=adapter, follower=adapter.follower, speech=speech, fast=options.fast)

    async def main() -> list[CallerResult]:
        tasks = [
            asyncio.create_task(
                callers.call(f"caller-{i + 1}", scenario.script_for(i, options.turns))
            )
            for i in range(options.sessions)
        ]
        while not all(t.done() for t in tasks):
            if on_tick is not None:
                on_tick(adapter.follower)
            await asyncio.wait(tasks, timeout=0.25)
        return [t.result() for t in tasks]

    try:
        results = asyncio.run(main())
        # Let the follower see the last closes before the processor drains.
        time.sleep(0.5)
        if on_tick is not None:
            on_tick(adapter.follower)
    finally:
        stats = processor.stop()
        adapter.close()
    run_dir = options.out_dir / prefix
    wavs = _write_wavs(adapter.follower, run_dir / "replies")
    return DemoResult(
        prefix=prefix,
        bootstrap=bootstrap,
        partitions=options.partitions,
        out_dir=run_dir,
        wav_files=wavs,
        callers=tuple(results),
        turns_committed=stats.turns_committed,
        turns_aborted=stats.turns_aborted,
        seconds=time.monotonic() - started,
    )
