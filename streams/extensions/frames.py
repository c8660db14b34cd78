"""The worker wire format: length-prefixed orjson frames and the item codec.

A frame is a 4-byte big-endian body length followed by an orjson object. The
parent sends ``{"op": ..., "id": n, ...}`` requests; the worker answers each
with ``{"id": n, "ok": true, "out": [items]}`` or ``{"id": n, "ok": false,
"error": kind, "message": text}``. Anything else on the pipe (a stray print, a
length beyond :data:`MAX_FRAME`, undecodable JSON) is a protocol violation.
"""

from __future__ import annotations

import base64
import os
import select
import struct
import time
from typing import Any

import orjson

from streams.nodes.items import AudioFrame, AudioOut, Item, ReplyText, TranscriptText

__all__ = [
    "HEADER",
    "MAX_FRAME",
    "FrameDecoder",
    "FrameError",
    "decode_item",
    "encode_frame",
    "encode_item",
    "read_frames_blocking",
]

HEADER = struct.Struct(">I")
MAX_FRAME = 8 << 20  # 8 MiB: far above any text item, bounded so garbage cannot pin memory


class FrameError(ValueError):
    """The byte stream is not a sequence of valid frames (the wrapper names the node)."""


def encode_frame(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Incremental decoder: :meth:`feed` bytes, get every complete message."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        out: list[dict[str, Any]] = []
        while len(self._buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buf)
            if size > MAX_FRAME:
                head = bytes(self._buf[:16])
                raise FrameError(f"frame length {size} exceeds {MAX_FRAME} (stream starts {head!r})")
            if len(self._buf) < HEADER.size + size:
                break
            body = bytes(self._buf[HEADER.size : HEADER.size + size])
            del self._buf[: HEADER.size + size]
            try:
                message = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise FrameError(f"frame is not JSON ({exc}): {body[:40]!r}") from None
            if not isinstance(message, dict):
                raise FrameError(f"frame is not an object: {body[:40]!r}")
            out.append(message)
        return out


def read_frames_blocking(fd: int, decoder: FrameDecoder, timeout_s: float) -> list[dict[str, Any]]:
    """Block (``select``) until ``decoder`` yields a message from ``fd`` or the time is up.

    For the worker's ``init`` answer at graph build time, before an event loop
    owns the pipe; returns ``[]`` on timeout, end of stream or a bad frame.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return []
        chunk = os.read(fd, 65536)
        if not chunk:
            return []
        try:
            messages = decoder.feed(chunk)
        except FrameError:
            return []
        if messages:
            return messages


def encode_item(item: Item) -> dict[str, Any]:
    if isinstance(item, TranscriptText):
        return {"t": "transcript", "text": item.text, "final": item.final, "confidence": item.confidence}
    if isinstance(item, ReplyText):
        return {"t": "reply", "text": item.text, "intent": item.intent}
    if isinstance(item, AudioFrame):
        pcm = base64.b64encode(item.pcm).decode()
        return {"t": "audio", "pcm": pcm, "sample_rate": item.sample_rate, "seq": item.seq}
    if isinstance(item, AudioOut):
        pcm = base64.b64encode(item.pcm).decode()
        return {"t": "audio_out", "pcm": pcm, "sample_rate": item.sample_rate, "seq": item.seq,
                "final": item.final}
    raise FrameError(f"cannot encode {type(item).__name__}")


def decode_item(data: Any) -> Item:
    """Rebuild an item, checking every field's type (the worker is not trusted)."""
    try:
        kind = data["t"]
        if kind == "transcript":
            text, final, confidence = data["text"], data["final"], data["confidence"]
            if isinstance(text, str) and isinstance(final, bool) and isinstance(confidence, int | float):
                return TranscriptText(text=text, final=final, confidence=float(confidence))
        elif kind == "reply":
            if isinstance(data["text"], str) and isinstance(data["intent"], str):
                return ReplyText(text=data["text"], intent=data["intent"])
        elif kind in ("audio", "audio_out"):
            pcm = base64.b64decode(data["pcm"], validate=True)
            rate, seq = data["sample_rate"], data["seq"]
            if isinstance(rate, int) and isinstance(seq, int):
                if kind == "audio":
                    return AudioFrame(pcm=pcm, sample_rate=rate, seq=seq)
                if isinstance(data["final"], bool):
                    return AudioOut(pcm=pcm, sample_rate=rate, seq=seq, final=data["final"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FrameError(f"malformed item {str(data)[:60]}: {exc}") from None
    raise FrameError(f"malformed item {str(data)[:60]}")
