"""Typed items that flow along graph edges, plus the end-of-input marker.

Small frozen slotted dataclasses: they are created per 20 ms of audio, so they
stay cheap and cannot be mutated by a downstream node after emission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "AUDIO_CHANNELS",
    "AUDIO_CODECS",
    "AUDIO_SAMPLE_RATES_HZ",
    "END_OF_INPUT",
    "AudioFrame",
    "AudioOut",
    "EndOfInput",
    "Item",
    "ReplyText",
    "TranscriptText",
]


# The only audio the nodes decode: what an AUDIO_CHUNK must carry to reach them.
AUDIO_CODECS = frozenset({"pcm16"})
AUDIO_CHANNELS = 1
AUDIO_SAMPLE_RATES_HZ = range(8_000, 48_001)


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """Mono PCM16 little-endian input audio (normally 20 ms = 640 bytes at 16 kHz)."""

    pcm: bytes
    sample_rate: int
    seq: int


@dataclass(frozen=True, slots=True)
class TranscriptText:
    text: str
    final: bool
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class ReplyText:
    text: str
    intent: str


@dataclass(frozen=True, slots=True)
class AudioOut:
    """Synthesised mono PCM16 output; ``final`` marks the last chunk of one reply."""

    pcm: bytes
    sample_rate: int
    seq: int
    final: bool


@dataclass(frozen=True, slots=True)
class EndOfInput:
    """Edge marker: the upstream will send nothing more this turn (finished or cancelled)."""

    reason: str = "done"


END_OF_INPUT: Final = EndOfInput()

Item = AudioFrame | TranscriptText | ReplyText | AudioOut
