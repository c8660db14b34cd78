"""A LiveKit room bridge: the room's callers in, the pipeline's accepted replies out.

The bridge joins a room as one participant and maps it onto RSPP exactly as the
table in :mod:`streams.adapters.base` says:

- a remote participant's microphone track is subscribed → ``SESSION_OPEN``
  (session id ``lk-<room>-<identity>-<participant sid>``); the participant
  leaving → ``SESSION_CLOSE``;
- its audio, read as 16 kHz mono PCM16 in 20 ms frames, is gated by an energy
  VAD: an utterance (with a short pre-roll) is sent as ``AUDIO_CHUNK`` on the
  data lane and ends after ``silence_ms`` of silence, or at once when the
  participant sends the data message ``{"type": "end_of_utterance"}``;
- speech while a reply is playing to that participant, or the data message
  ``{"type": "barge_in"}`` → ``CANCEL{scope=TURN}`` on the control lane;
- replies: a :class:`~streams.adapters.follower.LogFollower` hands over audio
  only once its ``OUTPUT_ACCEPTED`` is in the log; the bridge plays it on a
  track of its own per caller (``rspp-reply-<identity>``) and drops what is
  still queued at the turn's ``TURN_ABORT``.

Everything is asyncio (as the LiveKit SDK is): produce calls never block the loop and
the follower's thread hands playback over with ``call_soon_threadsafe``. Run it as
``bridge = LiveKitAdapterPlugin(lk).build_adapter(cfg); await bridge.start()`` … ``aclose()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import api, rtc

from streams.abi.events import Envelope, SessionOpen
from streams.adapters.base import AdapterConfig, AdapterError, TransportContract
from streams.adapters.follower import LogFollower, Playback
from streams.adapters.reference import ReferenceAdapterPlugin
from streams.client import VoiceClient, VoiceSession

__all__ = ["LiveKitAdapterPlugin", "LiveKitConfig", "LiveKitRoomBridge"]

SAMPLE_RATE = 16000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000 * 2  # 640: 20 ms of 16 kHz mono PCM16
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveKitConfig:
    """Which room the bridge joins, as whom, and how it hears speech."""

    url: str = "ws://127.0.0.1:7880"
    room: str = "voice-demo"
    api_key: str = "devkey"  # livekit-server --dev
    api_secret: str = "secret"
    identity: str = "rspp-bridge"
    vad_rms: float = 500.0  # RMS of a 20 ms PCM16 frame at or above which it is speech
    speech_start_ms: int = 60  # this much speech opens an utterance
    preroll_ms: int = 200  # audio before the detected start, sent with the utterance
    silence_ms: int = 600  # this much silence after speech ends the utterance
    barge_in_ms: int = 100  # this much speech over a playing reply cancels the turn
    playback_tail_ms: int = 300  # a reply counts as playing this long after its last frame

    @classmethod
    def from_env(cls, **overrides: Any) -> LiveKitConfig:
        """LiveKit's usual variables (``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``)
        plus ``RSPP_LIVEKIT_ROOM``; keyword overrides win."""
        names = {"url": "LIVEKIT_URL", "api_key": "LIVEKIT_API_KEY", "room": "RSPP_LIVEKIT_ROOM"}
        names["api_secret"] = "LIVEKIT_API_SECRET"
        env: dict[str, Any] = {k: os.environ[v] for k, v in names.items() if v in os.environ}
        return cls(**{**env, **overrides})

    def token(self) -> str:
        grants = api.VideoGrants(
            room_join=True, room=self.room, can_publish=True, can_subscribe=True,
            can_publish_data=True,
        )  # fmt: skip
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(self.identity)
            .with_name("RSPP bridge")
            .with_grants(grants)
            .to_jwt()
        )


def frame_rms(pcm: bytes) -> float:
    """Root mean square of a PCM16 frame (0 for an empty one)."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


@dataclass(slots=True)
class _Caller:
    """One remote participant with a microphone: its session, VAD and reply speaker."""

    session_id: str
    source: rtc.AudioSource
    track_sid: str = ""
    in_speech: bool = False
    voiced_ms: int = 0
    silent_ms: int = 0
    preroll: deque[bytes] = field(default_factory=deque)
    pending: bytearray = field(default_factory=bytearray)
    replies: asyncio.Queue[Playback] = field(default_factory=asyncio.Queue)
    playing_turn: str | None = None
    played_until: float = 0.0  # monotonic time at which the captured reply audio ends
    stopped: set[str] = field(default_factory=set)
    barged: set[str] = field(default_factory=set)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class LiveKitRoomBridge:
    """Joins a LiveKit room and runs every microphone in it through RSPP (see the module doc)."""

    def __init__(self, config: AdapterConfig, livekit: LiveKitConfig) -> None:
        self.config = config
        self.livekit = livekit
        self.client = VoiceClient(
            bootstrap=config.bootstrap,
            prefix=config.prefix,
            tenant_id=config.tenant_id,
            source="urn:rspp:livekit-bridge",
        )
        self.follower = LogFollower(
            bootstrap=config.bootstrap,
            prefix=config.prefix,
            partitions=config.partitions,
            on_playback=self._from_follower,
            since_ms=config.follow_since_ms(),
        )
        self.room = rtc.Room()
        self._sessions: dict[str, VoiceSession] = {}
        self._callers: dict[str, _Caller] = {}  # by participant identity
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> LiveKitRoomBridge:
        """Start following the log, then join the room (existing microphones are picked up)."""
        self._loop = asyncio.get_running_loop()
        self.follower.start()
        self.room.on("track_subscribed", self._on_track_subscribed)
        self.room.on("participant_disconnected", self._on_participant_left)
        self.room.on("data_received", self._on_data)
        try:
            await self.room.connect(self.livekit.url, self.livekit.token())
        except rtc.ConnectError as exc:
            where = f"LiveKit room {self.livekit.room!r} at {self.livekit.url}"
            raise AdapterError(f"cannot join {where}: {exc}") from exc
        return self

    async def aclose(self) -> None:
        """Close every session, leave the room, flush the producer and stop the follower."""
        for identity in list(self._callers):
            await self._leave(identity)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.room.disconnect()
        await asyncio.to_thread(self.close)
        self._loop = None

    def session_for(self, identity: str) -> str | None:
        """The session id of a participant currently bridged, if any."""
        caller = self._callers.get(identity)
        return caller.session_id if caller is not None else None

    # -- RuntimeAdapter: lane events (non-blocking produce) ------------------
    def _session(self, session_id: str) -> VoiceSession:
        if session_id not in self._sessions:
            raise AdapterError(f"session {session_id} is not open on this bridge")
        return self._sessions[session_id]

    def open_session(self, session_id: str) -> None:
        session = VoiceSession(client=self.client, session_id=session_id)
        session.publish(SessionOpen(transport="livekit", locale="en-US"))
        self._sessions[session_id] = session

    def send_audio(self, session_id: str, pcm: bytes) -> Envelope:
        return self._session(session_id).send_audio(pcm, sample_rate=SAMPLE_RATE)

    def end_utterance(self, session_id: str) -> Envelope:
        return self._session(session_id).end_utterance(reason="vad")

    def barge_in(self, session_id: str) -> Envelope:
        return self._session(session_id).cancel(reason="barge-in")

    def close_session(self, session_id: str) -> None:
        self._sessions.pop(session_id).close(reason="participant left")

    def close(self) -> None:
        """Blocking part of shutdown (call :meth:`aclose` from the loop instead)."""
        self.client.flush(10)
        self.follower.stop()

    # -- room events -----------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("livekit bridge task %s failed", task.get_name(), exc_info=task.exception())

    def _on_track_subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if (
            track.kind == rtc.TrackKind.KIND_AUDIO
            and publication.source == rtc.TrackSource.SOURCE_MICROPHONE
        ):
            self._spawn(self._join(track, participant), f"join-{participant.identity}")

    def _on_participant_left(self, participant: rtc.RemoteParticipant) -> None:
        self._spawn(self._leave(participant.identity), f"leave-{participant.identity}")

    def _on_data(self, packet: rtc.DataPacket) -> None:
        caller = self._callers.get(packet.participant.identity) if packet.participant else None
        if caller is None:
            return
        try:
            kind = json.loads(packet.data).get("type")
        except (ValueError, AttributeError):
            return  # not a bridge message
        if kind == "end_of_utterance":
            self._end_utterance(caller)
        elif kind == "barge_in":
            if caller.playing_turn is not None:
                caller.barged.add(caller.playing_turn)
            self.barge_in(caller.session_id)

    async def _join(self, track: rtc.Track, participant: rtc.RemoteParticipant) -> None:
        identity = participant.identity
        caller = self._callers.get(identity)
        if caller is not None:  # a re-published microphone: same session, new track
            caller.tasks.append(self._spawn(self._listen(caller, track), f"listen-{identity}"))
            return
        caller = _Caller(
            session_id=f"lk-{self.livekit.room}-{identity}-{participant.sid}",
            source=rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=200),
            preroll=deque(maxlen=max(1, self.livekit.preroll_ms // FRAME_MS)),
        )
        self._callers[identity] = caller
        self.open_session(caller.session_id)
        caller.tasks.append(self._spawn(self._listen(caller, track), f"listen-{identity}"))
        caller.tasks.append(self._spawn(self._play(caller), f"play-{identity}"))
        reply = rtc.LocalAudioTrack.create_audio_track(f"rspp-reply-{identity}", caller.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        caller.track_sid = (await self.room.local_participant.publish_track(reply, options)).sid

    async def _leave(self, identity: str) -> None:
        caller = self._callers.pop(identity, None)
        if caller is None:
            return
        for task in caller.tasks:
            task.cancel()
        self._end_utterance(caller)
        self.close_session(caller.session_id)
        with contextlib.suppress(Exception):  # the room may already be gone
            await self.room.local_participant.unpublish_track(caller.track_sid)
        await caller.source.aclose()

    # -- ingress: microphone → VAD → lanes -------------------------------------
    async def _listen(self, caller: _Caller, track: rtc.Track) -> None:
        stream = rtc.AudioStream(
            track, sample_rate=SAMPLE_RATE, num_channels=1, frame_size_ms=FRAME_MS
        )
        frames = aiter(stream)
        gap_s = FRAME_MS * 5 / 1000.0
        try:
            while True:
                try:
                    event = await asyncio.wait_for(anext(frames), timeout=gap_s)
                except TimeoutError:
                    # A muted or stopped sender sends no packets: that is silence too.
                    self._hear(caller, b"\x00" * FRAME_BYTES * 5)
                    continue
                except StopAsyncIteration:
                    return
                self._hear(caller, bytes(event.frame.data))
        finally:
            await stream.aclose()

    def _hear(self, caller: _Caller, pcm: bytes) -> None:
        caller.pending.extend(pcm)
        while len(caller.pending) >= FRAME_BYTES:
            frame = bytes(caller.pending[:FRAME_BYTES])
            del caller.pending[:FRAME_BYTES]
            self._vad(caller, frame)

    def _vad(self, caller: _Caller, frame: bytes) -> None:
        cfg = self.livekit
        if frame_rms(frame) >= cfg.vad_rms:
            caller.voiced_ms += FRAME_MS
            caller.silent_ms = 0
        else:
            caller.voiced_ms = 0
            caller.silent_ms += FRAME_MS
        turn = caller.playing_turn
        if (
            caller.voiced_ms >= cfg.barge_in_ms
            and turn is not None
            and turn not in caller.barged
            and time.monotonic() < caller.played_until + cfg.playback_tail_ms / 1000.0
        ):
            caller.barged.add(turn)
            self.barge_in(caller.session_id)
        if caller.in_speech:
            self.send_audio(caller.session_id, frame)
            if caller.silent_ms >= cfg.silence_ms:
                self._end_utterance(caller)
            return
        caller.preroll.append(frame)
        if caller.voiced_ms >= cfg.speech_start_ms:
            caller.in_speech = True
            for held in caller.preroll:
                self.send_audio(caller.session_id, held)
            caller.preroll.clear()

    def _end_utterance(self, caller: _Caller) -> None:
        if caller.in_speech:  # an END_OF_UTTERANCE without audio has no turn to end
            self.end_utterance(caller.session_id)
        caller.in_speech = False
        caller.silent_ms = caller.voiced_ms = 0
        caller.preroll.clear()

    # -- egress: accepted audio → the caller's reply track ------------------------
    def _from_follower(self, playback: Playback) -> None:
        """Called on the follower's thread; hands over to the loop."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._on_playback, playback)

    def _caller_of(self, session_id: str) -> _Caller | None:
        return next((c for c in self._callers.values() if c.session_id == session_id), None)

    def _on_playback(self, playback: Playback) -> None:
        caller = self._caller_of(playback.session_id)
        if caller is None:
            return  # a session of another bridge, or one that has left
        if not playback.stop:
            caller.replies.put_nowait(playback)
            return
        caller.stopped.add(playback.turn_id)  # TURN_ABORT: not one more frame of this turn
        if caller.playing_turn == playback.turn_id:
            caller.source.clear_queue()
            caller.playing_turn = None
            caller.played_until = 0.0

    async def _play(self, caller: _Caller) -> None:
        while True:
            playback = await caller.replies.get()
            turn = playback.turn_id
            pcm = playback.pcm
            for offset in range(0, len(pcm), FRAME_BYTES):
                if turn in caller.stopped:
                    break
                chunk = pcm[offset : offset + FRAME_BYTES]  # PCM16: always whole samples
                caller.playing_turn = turn
                frame = rtc.AudioFrame(chunk, SAMPLE_RATE, 1, len(chunk) // 2)
                await caller.source.capture_frame(frame)
                seconds = len(chunk) / (2 * SAMPLE_RATE)
                caller.played_until = max(time.monotonic(), caller.played_until) + seconds


class LiveKitAdapterPlugin:
    """Plugin entry for the LiveKit room bridge (id ``livekit``)."""

    def __init__(self, livekit: LiveKitConfig | None = None) -> None:
        self.livekit = livekit if livekit is not None else LiveKitConfig.from_env()

    def id(self) -> str:
        return "livekit"

    def validate_contract(self, transport: TransportContract, abi_version: str) -> None:
        ReferenceAdapterPlugin().validate_contract(transport, abi_version)
        if transport.frame_ms != FRAME_MS:
            raise AdapterError(
                f"the LiveKit bridge sends {FRAME_MS} ms frames, not {transport.frame_ms} ms"
            )

    def build_adapter(self, config: AdapterConfig) -> LiveKitRoomBridge:
        """A bridge that has not joined yet: ``await bridge.start()`` on a running loop."""
        return LiveKitRoomBridge(config, self.livekit)
