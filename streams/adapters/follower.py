"""Follow a prefix's log (read_committed) and keep a live view of sessions and turns.

This is the egress side of a transport adapter: it plays (collects) only audio
whose ``NODE_OUTPUT`` was followed by ``OUTPUT_ACCEPTED`` and stops a turn's
playback at its ``TURN_ABORT``. A transport bridge that plays as the log goes passes
``on_playback``: it is called (on the follower's thread, outside its lock) with a
:class:`Playback` for every accepted audio chunk and for every abort. It also measures what a user hears: time from
end of speech to first accepted audio, and from a barge-in to the abort.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Message, TopicPartition

from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.abi.errors import CodecError
from streams.config import kafka_settings
from streams.topics import OUTPUT_MAX_RECORD_BYTES, OUTPUT_READER_CONFIG, TopicLayout

__all__ = ["LogFollower", "Playback", "SessionView", "TurnView"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Playback:
    """What a speaker must do now: play accepted ``pcm`` of a turn, or ``stop`` it (TURN_ABORT)."""

    session_id: str
    turn_id: str
    pcm: bytes = b""
    stop: bool = False


@dataclass(slots=True)
class TurnView:
    turn_id: str
    state: str = "OPEN"
    transcript: str = ""
    reply: str = ""
    audio: bytearray = field(default_factory=bytearray)
    first_audio_at: float | None = None  # monotonic, when the follower saw the first accepted audio
    closed_at: float | None = None
    abort_reason: str | None = None
    node_latency_us: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class SessionView:
    session_id: str
    admitted: bool = False
    turns: dict[str, TurnView] = field(default_factory=dict)
    current: str | None = None
    events: int = 0


class LogFollower:
    """A background thread consuming ``<prefix>.log`` into :class:`SessionView` objects."""

    def __init__(
        self,
        *,
        bootstrap: str,
        prefix: str,
        partitions: int,
        on_playback: Callable[[Playback], None] | None = None,
        since_ms: int | None = None,
    ) -> None:
        """``since_ms`` (epoch milliseconds): start at the first log record written at or
        after it, so a bridge on a long-lived prefix does not replay the whole history;
        None reads the log from its beginning."""
        self.layout = TopicLayout(prefix=prefix, partitions=partitions)
        self.codec = EventCodec(max_frame_bytes=OUTPUT_MAX_RECORD_BYTES)
        self.sessions: dict[str, SessionView] = {}
        self.lock = threading.Lock()
        self.events = 0
        self.undecodable = 0  # log records this build cannot decode (skipped, counted)
        self._audio_by_output: dict[str, bytes] = {}
        self._on_playback = on_playback
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                **kafka_settings(bootstrap),
                **OUTPUT_READER_CONFIG,
                "group.id": f"rspp-follower-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
            }
        )
        self._consumer.assign(self._start_positions(partitions, since_ms))
        self._thread = threading.Thread(target=self._run, name="rspp-log-follower", daemon=True)

    def _start_positions(self, partitions: int, since_ms: int | None) -> list[TopicPartition]:
        if since_ms is None:
            return [TopicPartition(self.layout.log, p, OFFSET_BEGINNING) for p in range(partitions)]
        wanted = [TopicPartition(self.layout.log, p, since_ms) for p in range(partitions)]
        found = self._consumer.offsets_for_times(wanted, timeout=10)
        # -1: nothing written at or after since_ms yet on that partition: follow from its end.
        return [
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
            for tp in found
        ]

    def start(self) -> LogFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()

    def session(self, session_id: str) -> SessionView:
        with self.lock:
            return self.sessions.setdefault(session_id, SessionView(session_id))

    def turn_closed(self, session_id: str, turn_id: str) -> bool:
        with self.lock:
            view = self.sessions.get(session_id)
            turn = view.turns.get(turn_id) if view else None
            return turn is not None and turn.closed_at is not None

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._next_batch():
                value = msg.value()
                if msg.error() is not None or value is None:
                    continue
                try:
                    event = self.codec.decode(value)
                except CodecError:
                    self.undecodable += 1  # a newer writer's event: not ours to play
                    continue
                playback = self._apply(event)
                if playback is not None and self._on_playback is not None:
                    self._on_playback(playback)

    def _next_batch(self) -> list[Message]:
        # consume(n, timeout) waits for n records or the whole timeout, so on a quiet log it
        # added up to the timeout (50 ms) to every barge-in's stop and every first audio.
        # Take what is there; when nothing is, poll(), which returns on the first record.
        batch: list[Message] = self._consumer.consume(num_messages=500, timeout=0)
        if batch:
            return batch
        msg = self._consumer.poll(0.05)
        return [msg] if msg is not None else []

    def _apply(self, event: ev.Envelope) -> Playback | None:
        now = time.monotonic()
        with self.lock:
            self.events += 1
            view = self.sessions.setdefault(event.session_id, SessionView(event.session_id))
            view.events += 1
            p = event.payload
            if isinstance(p, ev.Admit):
                view.admitted = True
            turn_id = event.turn_id
            if turn_id is None:
                return None
            turn = view.turns.setdefault(turn_id, TurnView(turn_id))
            if isinstance(p, ev.TurnOpen):
                view.current = turn_id
            elif isinstance(p, ev.TurnActive):
                turn.state = "ACTIVE"
            elif isinstance(p, ev.NodeOutput):
                if p.latency_us is not None and event.node_id is not None:
                    turn.node_latency_us[event.node_id] = (
                        turn.node_latency_us.get(event.node_id, 0) + p.latency_us
                    )
                if p.kind == "transcript" and p.final and p.text is not None:
                    turn.transcript = p.text
                elif p.kind == "reply" and p.text is not None:
                    turn.reply = p.text
                elif p.kind == "audio" and p.data is not None:
                    self._audio_by_output[event.event_id] = p.data
            elif isinstance(p, ev.OutputAccepted):
                pcm = self._audio_by_output.pop(p.output_event_id, None)
                if pcm is not None and turn.abort_reason is None:
                    turn.audio.extend(pcm)
                    if turn.first_audio_at is None:
                        turn.first_audio_at = now
                        turn.state = "SPEAKING"
                    return Playback(session_id=event.session_id, turn_id=turn_id, pcm=pcm)
            elif isinstance(p, ev.TurnCommit):
                turn.state = "COMMITTED"
            elif isinstance(p, ev.TurnAbort):
                turn.state = "ABORTED"
                turn.abort_reason = p.reason
                return Playback(session_id=event.session_id, turn_id=turn_id, stop=True)
            elif isinstance(p, ev.TurnClose):
                turn.closed_at = now
                if view.current == turn_id:
                    view.current = None
            return None
