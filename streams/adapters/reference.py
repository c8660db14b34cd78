"""The in-process reference adapter: a simulated room on top of the voice SDK.

Ingress goes through :class:`streams.client.VoiceClient`; egress is a
:class:`LogFollower`. The demo, the tests and anyone writing a real bridge
(LiveKit, SIP) start here: a real bridge replaces the simulated microphone and
speaker with the transport's tracks and keeps the same mapping.
"""

from __future__ import annotations

from streams.abi.events import Envelope
from streams.abi.version import ABI_VERSION
from streams.adapters.base import AdapterConfig, AdapterError, TransportContract
from streams.adapters.follower import LogFollower
from streams.client import VoiceClient, VoiceSession

__all__ = ["ReferenceAdapter", "ReferenceAdapterPlugin"]

FRAME_BYTES = 640  # 20 ms of 16 kHz mono PCM16


class ReferenceAdapter:
    """Sessions in through the SDK, accepted replies out through the log follower."""

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config
        self.client = VoiceClient(
            bootstrap=config.bootstrap, prefix=config.prefix, tenant_id=config.tenant_id
        )
        self.follower = LogFollower(
            bootstrap=config.bootstrap,
            prefix=config.prefix,
            partitions=config.partitions,
            since_ms=config.follow_since_ms(),
        )
        self.follower.start()
        self._sessions: dict[str, VoiceSession] = {}

    def _session(self, session_id: str) -> VoiceSession:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise AdapterError(f"session {session_id} is not open on this adapter") from None

    def open_session(self, session_id: str) -> None:
        self._sessions[session_id] = self.client.open_session(session_id)
        self.client.flush(5)

    def send_audio(self, session_id: str, pcm: bytes) -> Envelope:
        if len(pcm) > FRAME_BYTES * 50:
            raise AdapterError(
                f"audio frame of {len(pcm)} bytes: send 20 ms frames ({FRAME_BYTES} bytes)"
            )
        return self._session(session_id).send_audio(pcm)

    def end_utterance(self, session_id: str) -> Envelope:
        event = self._session(session_id).end_utterance()
        self.client.flush(5)
        return event

    def barge_in(self, session_id: str) -> Envelope:
        event = self._session(session_id).cancel(reason="barge-in")
        self.client.flush(5)
        return event

    def telemetry(
        self, session_id: str, name: str, value: float, unit: str | None = None
    ) -> Envelope:
        return self._session(session_id).telemetry(name, value, unit=unit)

    def close_session(self, session_id: str) -> None:
        self._session(session_id).close()
        self.client.flush(5)

    def close(self) -> None:
        self.client.flush(10)
        self.follower.stop()


class ReferenceAdapterPlugin:
    """Plugin entry for the reference adapter (id ``reference``)."""

    def id(self) -> str:
        return "reference"

    def validate_contract(self, transport: TransportContract, abi_version: str) -> None:
        if (
            transport.codec != "pcm16"
            or transport.channels != 1
            or transport.sample_rate_hz != 16000
        ):
            raise AdapterError(
                f"reference adapter carries 16 kHz mono pcm16, not {transport.sample_rate_hz} Hz x"
                f"{transport.channels} {transport.codec}"
            )
        if abi_version.split(".", maxsplit=1)[0] != ABI_VERSION.split(".")[0]:
            raise AdapterError(
                f"Event ABI {abi_version} is not compatible with runtime ABI {ABI_VERSION}"
            )

    def build_adapter(self, config: AdapterConfig) -> ReferenceAdapter:
        return ReferenceAdapter(config)
