"""``tts.espeak_ng``: ReplyText -> 20 ms AudioOut chunks of 16 kHz mono PCM16.

Synthesis runs the espeak-ng binary as an asyncio subprocess behind a
:class:`ProviderChain`: cancelling the turn kills the child at once, and a
failing voice falls back to the next provider in the policy's order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from pipelines.models.base import Model
from streams.nodes.audio import chunk_pcm16, espeak_pcm16
from streams.nodes.errors import BadInputError, NodeConfigError
from streams.nodes.items import AudioOut, Item, ReplyText
from streams.nodes.kind import builtin
from streams.nodes.node import NodeContext, NodeFactory
from streams.nodes.providers import ProviderChain, ProviderPolicy

__all__ = ["KIND", "PROVIDER_NAME", "EspeakConfig", "EspeakNode", "EspeakProvider"]

PROVIDER_NAME = "espeak_ng"


class EspeakConfig(Model):
    voice: str = Field(min_length=1)
    sample_rate_hz: Literal[16000] = 16000
    rate_wpm: int = Field(default=160, ge=80, le=450)
    pitch: int = Field(default=50, ge=0, le=99)
    chunk_ms: int = Field(default=20, ge=5, le=100)
    realtime: bool = False  # emit chunks at playback pace, as a streaming TTS feeding a live call


@dataclass(frozen=True, slots=True)
class EspeakProvider:
    """One espeak-ng voice; ``name`` is ``espeak_ng`` or ``espeak_ng:<voice>``."""

    name: str
    voice: str
    rate_wpm: int
    pitch: int
    sample_rate_hz: int

    async def __call__(self, request: str, ctx: NodeContext) -> bytes:
        del ctx
        return await espeak_pcm16(
            request,
            voice=self.voice,
            rate=self.rate_wpm,
            pitch=self.pitch,
            sample_rate=self.sample_rate_hz,
        )


def providers_for(config: EspeakConfig, names: tuple[str, ...]) -> list[EspeakProvider]:
    """Resolve the policy's provider names; ``espeak_ng:<voice>`` selects another voice."""
    out = []
    for name in names or (PROVIDER_NAME,):
        engine, _, voice = name.partition(":")
        if engine != PROVIDER_NAME:
            raise NodeConfigError(
                f"tts.espeak_ng: unknown provider {name!r} (have {PROVIDER_NAME!r})"
            )
        out.append(
            EspeakProvider(
                name=name,
                voice=voice or config.voice,
                rate_wpm=config.rate_wpm,
                pitch=config.pitch,
                sample_rate_hz=config.sample_rate_hz,
            )
        )
    return out


class EspeakNode:
    """Each ReplyText becomes a run of AudioOut chunks; the last has ``final=True``."""

    def __init__(self, config: EspeakConfig, chain: ProviderChain[str, bytes]) -> None:
        self.config = config
        self.chain = chain
        self._seq = 0

    @classmethod
    def build(cls, config: EspeakConfig, policy: ProviderPolicy) -> EspeakNode:
        # skip / text_only: the reply text is already in the log, so audio may be silent.
        degrade = (lambda _text: b"") if policy.degrade in ("skip", "text_only") else None
        chain: ProviderChain[str, bytes] = ProviderChain(
            providers=providers_for(config, policy.providers),
            timeout_s=policy.timeout_s,
            retries=policy.retries,
            degrade=degrade,
        )
        return cls(config, chain)

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        if not isinstance(item, ReplyText):
            raise BadInputError(f"node {ctx.node_id!r} takes ReplyText, got {type(item).__name__}")
        pcm = await self.chain.call(item.text, ctx) if item.text.strip() else b""
        chunks = list(
            chunk_pcm16(pcm, sample_rate=self.config.sample_rate_hz, chunk_ms=self.config.chunk_ms)
        ) or [b""]
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            if self.config.realtime and i:
                await asyncio.sleep(self.config.chunk_ms / 1000.0)
            yield AudioOut(chunk, self.config.sample_rate_hz, self._seq, final=i == last)
            self._seq += 1

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        return
        yield

    def close(self) -> None:
        pass


def _prepare(config: EspeakConfig, policy: ProviderPolicy) -> NodeFactory:
    EspeakNode.build(config, policy)  # resolve provider names now
    return lambda: EspeakNode.build(config, policy)


# espeak-ng output is stable per installed version, not across versions: not replay-pure.
KIND = builtin("tts.espeak_ng", io=("text/reply", "audio/pcm16"), providers=(PROVIDER_NAME,),
               config=EspeakConfig, node=EspeakNode, deterministic=False, prepare=_prepare)
