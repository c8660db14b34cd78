"""The voice nodes' work on the processor's event loop, vs what it replaced.

Both run on the loop and hold the GIL, so every millisecond here is a millisecond
no session and no cancel is served:

- a new pocketsphinx decoder (built when more sessions speak at once than the pool
  holds) with a dictionary of only the grammar's words, vs the same decoder loading
  the model's full 135k-word dictionary;
- resampling a 2 s espeak-ng reply (22050 -> 16000 Hz), vectorised, vs the same
  integer formula one sample at a time.

Run: ``python -m bench.voice_bench [--quick]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.harness import BenchRow

__all__ = ["run"]

PHRASES = ("turn on the kitchen lights", "what time is it", "play some music", "stop")


def _best_ms(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - started) * 1000.0)
    return best


def run(*, quick: bool) -> list[dict[str, Any]]:
    from pocketsphinx import Decoder

    from streams.nodes.audio import resample_pcm16, resample_pcm16_reference
    from streams.nodes.stt import PocketsphinxConfig, _new_decoder

    rounds = 3 if quick else 7
    grammar = PocketsphinxConfig(keywords=PHRASES).grammar()
    _new_decoder(grammar, 16000)  # the grammar dictionary is cut once per process

    def full_dictionary() -> object:
        decoder = Decoder(samprate=16000, lm=None, bestpath=False, loglevel="FATAL")
        decoder.add_jsgf_string("g", grammar)
        decoder.activate_search("g")
        return decoder

    grammar_ms = _best_ms(lambda: _new_decoder(grammar, 16000), rounds)
    full_ms = _best_ms(full_dictionary, rounds)
    reply = bytes(range(256)) * (22050 * 2 * 2 // 256)  # 2 s of PCM16 at 22050 Hz
    fast_ms = _best_ms(lambda: resample_pcm16(reply, 22050, 16000), rounds)
    slow_ms = _best_ms(lambda: resample_pcm16_reference(reply, 22050, 16000), rounds)
    rows = [
        BenchRow(name="new STT decoder (grammar-only dictionary)", unit="ms", value=grammar_ms,
                 baseline="same decoder, full dictionary", baseline_value=full_ms,
                 goal="<= 0.25x"),
        BenchRow(name="TTS resample, 2 s reply 22050->16000 Hz", unit="ms", value=fast_ms,
                 baseline="same integer formula per sample", baseline_value=slow_ms,
                 goal="<= 0.1x"),
    ]
    return [r.as_dict() for r in rows]


if __name__ == "__main__":
    from bench.__main__ import main

    main(["--only", "voice"])
