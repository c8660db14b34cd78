"""Faust interop: a codec so Faust apps read (and write) RSPP topics as typed events.

    from streams.abi.faust_codec import register_faust_codec
    register_faust_codec()                         # registers "rspp"
    topic = app.topic("prod.voice.log", value_serializer="rspp")

Values arrive in agents as :class:`~streams.abi.events.Envelope` objects. Faust
is an integration, not the core: the runtime itself uses :class:`EventCodec`.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from streams.abi.codec import EventCodec
from streams.abi.events import Envelope

__all__ = ["CODEC_NAME", "RsppFaustCodec", "register_faust_codec"]

CODEC_NAME = "rspp"


class RsppFaustCodec(codecs.Codec):
    """Confluent-framed Avro ⇄ :class:`Envelope`; bad frames raise :class:`CodecError`."""

    def __init__(
        self, children: tuple[Any, ...] | None = None, *, codec: EventCodec | None = None
    ) -> None:
        super().__init__(children)
        self._codec = codec

    @property
    def codec(self) -> EventCodec:
        if self._codec is None:
            self._codec = EventCodec()
        return self._codec

    def clone(self, *children: Any) -> Any:
        return type(self)(self.children + children, codec=self._codec)

    def _loads(self, s: bytes) -> Any:
        return self.codec.decode(s)

    def _dumps(self, s: Any) -> bytes:
        if isinstance(s, Envelope):
            return self.codec.encode(s)
        if isinstance(s, bytes):
            return s  # already a frame (e.g. forwarded unchanged)
        raise TypeError(f"the {CODEC_NAME} codec encodes Envelope events, not {type(s).__name__}")


def register_faust_codec(
    name: str = CODEC_NAME, *, codec: EventCodec | None = None
) -> RsppFaustCodec:
    """Register the codec with Faust under ``name`` and return it."""
    instance = RsppFaustCodec(codec=codec)
    codecs.register(name, instance)
    return instance
