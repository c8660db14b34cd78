"""Replay throughput: events/s of ``replay()`` (all checks) vs a raw fastavro container read.

Both read the same export file in the same run; the goal is replay >= 0.5x raw.
The log is realistic voice traffic recorded with :class:`replay.testing.LogRecorder`:
per turn 40 audio chunks in, STT partial + final, the real text nodes, 40 TTS
chunks out, each accepted for playback (~135 events/turn, real frozen plans).

    .venv/bin/python -m bench.replay_bench [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import fastavro

__all__ = ["build_log", "run"]

_PER_SESSION = 4


def build_log(path: Path, *, events: int) -> int:
    """Record about ``events`` events of voice traffic into one container file."""
    from pipelines.bundles import read_bundle, write_bundle
    from pipelines.shipped import PIPELINES_DIR
    from replay.export import ContainerWriter
    from replay.sources import META_PARTITION, META_PREFIX, META_TOPIC
    from replay.testing import LogRecorder

    bundle = read_bundle(PIPELINES_DIR / "bundles" / "voice_assistant_bundle_v1.json")
    # Keep the bundle next to the log, as an export does: the shipped file may be rebuilt.
    write_bundle(bundle, path.parent / "bundles" / "voice_assistant.json")
    writer = ContainerWriter(path, codec="deflate", metadata={
        META_PREFIX: "bench", META_TOPIC: "bench.log", META_PARTITION: "0"})
    rec = LogRecorder(prefix="bench", tenant="acme", bundle=bundle, tts_chunk_bytes=160)
    rec.grant(1, "proc-a")
    utterances = [("turn on the", "turn on the kitchen lights"), ("what time", "what time is it"),
                  ("play some", "play some music"), ("set a timer", "set a timer for five minutes")]
    session = 0
    while writer.records + len(rec.events) < events:
        sid = f"s{session}"
        rec.open_session(sid)
        for n in range(_PER_SESSION):
            turn = rec.open_turn(sid, f"{sid}-t{n}", trigger="end_of_utterance")
            eou = rec.audio_input(sid, turn, chunks=40, chunk_bytes=160)
            partial, final = utterances[(session + n) % len(utterances)]
            out = rec.outputs(sid, turn, eou, stt=[(partial, False), (final, True)], tts_chunks=40)
            for i, chunk in enumerate(out["tts"]):
                rec.accept(sid, turn, chunk, playback=i == 0)
            rec.commit(sid, turn, outputs=len(out["tts"]))
        rec.close_session(sid)
        for env in rec.events:  # flush per session: memory stays flat
            writer.write(env)
        rec.events.clear()
        session += 1
    writer.close()
    return writer.records


def _raw_rate(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    with path.open("rb") as f:
        n = sum(1 for _ in fastavro.reader(f))
    return n / (time.perf_counter() - started), n


def run(*, quick: bool) -> list[dict[str, Any]]:
    from replay.api import replay
    from replay.sources import ContainerLogSource

    target = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="rspp-replay-bench-") as tmp:
        path = Path(tmp) / "bench.log.p0.avro"
        t0 = time.perf_counter()
        records = build_log(path, events=target)
        build_s = time.perf_counter() - t0
        raw, n = _raw_rate(path)
        result = replay(ContainerLogSource(path, allow_unverified=True))
        size = path.stat().st_size
    assert n == records == result.events
    return [{
        "name": f"replay verify (all checks), {records:,} events",
        "unit": "events/s",
        "value": round(result.events_per_second, 1),
        "baseline": "raw fastavro container read, same file",
        "baseline_value": round(raw, 1),
        "goal": ">= 0.5x baseline",
        "extra": {"events": records, "turns": sum(1 for t in result.turns if t.turn_id),
                  "divergences": len(result.divergences), "file_bytes": size,
                  "replay_s": round(result.seconds, 2), "build_s": round(build_s, 1),
                  "ratio": round(result.events_per_second / raw, 3)},
    }]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
