"""The voice-service SDK: publish session, audio, transcript and control events; read replies.

A voice service (a LiveKit room bridge, a SIP gateway, a test harness) holds one
:class:`VoiceClient` per process and one :class:`VoiceSession` per call::

    client = VoiceClient(bootstrap="127.0.0.1:9092", prefix="prod.voice", tenant_id="acme")
    session = client.open_session("call-42")
    for chunk in pcm_chunks:                       # 20 ms of 16 kHz mono PCM16 each
        session.send_audio(chunk)
    session.end_utterance()
    session.cancel()                               # barge-in: control lane, strict priority
    session.close()
    client.flush()

Records are keyed by session id on every lane with the Java-compatible murmur2
partitioner, so a session's control, data and telemetry records land in the
same partition number (co-partitioning) whatever client produced them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from types import TracebackType

from confluent_kafka import Producer

from streams.abi.codec import EventCodec
from streams.abi.events import (
    AudioChunk,
    Cancel,
    CancelScope,
    Correlation,
    EndOfUtterance,
    Envelope,
    Payload,
    SessionClose,
    SessionOpen,
    Telemetry,
    Transcript,
    TranscriptKind,
)
from streams.config import KafkaCredentials, kafka_settings
from streams.topics import Lane, TopicLayout

__all__ = ["VoiceClient", "VoiceSession"]

PRODUCER_DEFAULTS: dict[str, str | int | bool] = {
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
    "linger.ms": 1,
}


class VoiceClient:
    """Produces lane events for many sessions of one tenant."""

    def __init__(
        self,
        *,
        bootstrap: str,
        prefix: str,
        tenant_id: str = "default",
        source: str = "urn:rspp:voice-client",
        codec: EventCodec | None = None,
        tenant_lanes: bool = False,
        credentials: KafkaCredentials | None = None,
    ) -> None:
        """``tenant_lanes``: the deployment is multi-tenant, so publish on this tenant's own
        lane topics ``P.<tenant_id>.<lane>``. ``credentials``: authenticate as this
        principal instead of the ``RSPP_KAFKA_SASL_*`` environment (one process can then
        act for several tenants)."""
        tenants = (tenant_id,) if tenant_lanes else ()
        self.layout = TopicLayout(prefix=prefix, partitions=1, tenants=tenants)
        self.tenant_id = tenant_id
        self.codec = codec if codec is not None else EventCodec(source=source)
        self._producer = Producer(
            kafka_settings(bootstrap, credentials=credentials, **PRODUCER_DEFAULTS)
        )

    def open_session(self, session_id: str | None = None, *, locale: str = "en-US") -> VoiceSession:
        """Publish SessionOpen on the control lane and return the session handle."""
        session = VoiceSession(
            client=self, session_id=session_id or f"sess-{uuid.uuid4().hex[:12]}"
        )
        session.publish(SessionOpen(transport="sdk", locale=locale))
        return session

    def publish(self, event: Envelope) -> None:
        """Produce one event on its lane topic (keyed by session)."""
        value, headers = self.codec.encode_with_headers(event)
        topic = self.layout.lane_topic(Lane(event.lane.value), self.tenant_id)
        while True:
            try:
                self._producer.produce(topic, value, key=event.session_id, headers=list(headers))
                break
            except BufferError:
                self._producer.poll(0.01)
        self._producer.poll(0)

    def flush(self, timeout: float = 10.0) -> int:
        """Wait for delivery; returns the number of records still queued."""
        return int(self._producer.flush(timeout))

    def __enter__(self) -> VoiceClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.flush()


@dataclass
class VoiceSession:
    """One call: a session id, its sequence counter and the correlation of its utterances."""

    client: VoiceClient
    session_id: str
    _seq: int = 0
    _chunk_seq: int = 0
    _utterance: str = field(default_factory=lambda: uuid.uuid4().hex)
    # One W3C trace per call: the processor's session, turn and node spans join the log on it.
    trace_id: str | None = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def sent(self) -> int:
        """Events published for this session so far."""
        return self._seq

    def publish(self, payload: Payload, *, lane: Lane | None = None) -> Envelope:
        event = Envelope.new(
            payload,
            tenant_id=self.client.tenant_id,
            session_id=self.session_id,
            seq=self._seq,
            correlation=Correlation(correlation_id=self._utterance, trace_id=self.trace_id),
        )
        self._seq += 1
        self.client.publish(event)
        return event

    def send_audio(self, pcm: bytes, *, sample_rate: int = 16000) -> Envelope:
        """One chunk of mono PCM16 (20 ms = 640 bytes at 16 kHz)."""
        chunk = AudioChunk(
            codec="pcm16", sample_rate=sample_rate, channels=1, seq=self._chunk_seq, audio=pcm
        )
        self._chunk_seq += 1
        return self.publish(chunk)

    def end_utterance(self, *, reason: str = "vad") -> Envelope:
        """Mark the end of the spoken utterance: the turn boundary for audio pipelines."""
        event = self.publish(EndOfUtterance(last_chunk_seq=self._chunk_seq - 1, reason=reason))
        self._utterance = uuid.uuid4().hex  # the next utterance gets its own correlation id
        return event

    def send_transcript(
        self, text: str, *, final: bool = True, confidence: float = 1.0
    ) -> Envelope:
        """A transcript from an upstream recogniser; a final one ends the utterance."""
        kind = TranscriptKind.FINAL if final else TranscriptKind.PARTIAL
        event = self.publish(Transcript(kind=kind, text=text, confidence=confidence))
        if final:
            self._utterance = uuid.uuid4().hex
        return event

    def cancel(
        self, *, scope: CancelScope = CancelScope.TURN, target: str = "", reason: str = "barge-in"
    ) -> Envelope:
        """Barge-in / cancel on the control lane.

        ``target``: for TURN scope a turn id, or empty for the session's current turn;
        for NODE scope a node id (of the current turn); ignored for SESSION scope.
        """
        return self.publish(Cancel(scope=scope, target=target, reason=reason))

    def telemetry(self, name: str, value: float, *, unit: str | None = None) -> Envelope:
        return self.publish(Telemetry(name=name, value=value, unit=unit))

    def close(self, *, reason: str = "hangup") -> Envelope:
        return self.publish(SessionClose(reason=reason))
