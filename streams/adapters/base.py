"""The transport adapter contract (guide: ``RuntimeAdapterPlugin``).

An adapter turns transport happenings into lane events and log events back into
transport actions:

| transport                    | RSPP                                                      |
| ---------------------------- | --------------------------------------------------------- |
| participant joins / leaves   | ``SESSION_OPEN`` / ``SESSION_CLOSE`` on the control lane  |
| 20 ms of mic audio           | ``AUDIO_CHUNK`` (PCM16 mono, 16 kHz) on the data lane     |
| voice activity ends          | ``END_OF_UTTERANCE`` on the data lane                     |
| user talks over the reply    | ``CANCEL{scope=TURN}`` on the control lane (barge-in)     |
| client metrics               | ``TELEMETRY`` on the telemetry lane                       |
| play this audio              | ``OUTPUT_ACCEPTED`` of a ``NODE_OUTPUT{kind=audio}`` in the log |
| stop playing                 | ``TURN_ABORT`` of the playing turn in the log             |

Adapters must keep lane priority (never send control through the data lane),
key every record by session id, and play only audio whose output was accepted
(egress fencing happens in the processor; the adapter must not bypass it).

A third-party adapter package advertises its plugin in the ``rspp.adapters``
entry-point group (name = plugin id); ``ExtensionRegistry.adapters()`` in
:mod:`streams.extensions` lists those plus any registered in code with
``register_runtime_adapter``.

Two adapters ship: ``reference`` (:mod:`streams.adapters.reference`, a simulated
room for the demo and tests) and ``livekit`` (:mod:`streams.adapters.livekit`, a
real room bridge; extra ``rspp[livekit]``). In a LiveKit room the rows read: a
participant's microphone track subscribed / the participant leaving; its track
resampled to 16 kHz mono; an energy VAD's end of speech or the data message
``{"type": "end_of_utterance"}``; speech while the bridge plays a reply or the data
message ``{"type": "barge_in"}``; the bridge's per-caller reply track
(``rspp-reply-<identity>``) playing accepted audio and dropping it at the abort.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from streams.abi.events import Envelope
from streams.errors import StreamsError

__all__ = [
    "AdapterConfig",
    "AdapterError",
    "RuntimeAdapter",
    "RuntimeAdapterPlugin",
    "TransportContract",
]


class AdapterError(StreamsError):
    """A transport adapter cannot be built or violates the contract."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportContract:
    """What the transport side offers; checked against the Event ABI before use."""

    sample_rate_hz: int = 16000
    channels: int = 1
    frame_ms: int = 20
    codec: str = "pcm16"
    supports_barge_in: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterConfig:
    """Where an adapter publishes and reads."""

    bootstrap: str
    prefix: str
    tenant_id: str = "default"
    partitions: int = 6
    # How far back the log follower starts (None: the whole log). An adapter only plays
    # sessions it opened, so history older than its own start is never needed.
    follow_lookback_s: float | None = 30.0

    def follow_since_ms(self) -> int | None:
        if self.follow_lookback_s is None:
            return None
        return int((time.time() - self.follow_lookback_s) * 1000)


class RuntimeAdapter(Protocol):
    """One live adapter: sessions in, replies out."""

    def open_session(self, session_id: str) -> None: ...
    def send_audio(self, session_id: str, pcm: bytes) -> Envelope: ...
    def end_utterance(self, session_id: str) -> Envelope: ...
    def barge_in(self, session_id: str) -> Envelope: ...
    def close_session(self, session_id: str) -> None: ...
    def close(self) -> None: ...


class RuntimeAdapterPlugin(Protocol):
    """Registers an adapter kind (e.g. a LiveKit room bridge) with RSPP."""

    def id(self) -> str: ...
    def validate_contract(self, transport: TransportContract, abi_version: str) -> None: ...
    def build_adapter(self, config: AdapterConfig) -> RuntimeAdapter: ...
