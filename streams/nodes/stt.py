"""``stt.pocketsphinx``: streaming speech-to-text constrained by a grammar.

pocketsphinx's default n-gram model mis-hears espeak-ng voices ("turn on the
kitchen lights" -> "they're not looking like"), so the node always decodes
against a JSGF grammar: given verbatim, or built from the expected phrases.
Decoders are pooled per (grammar, sample rate) and reused across turns. A new
one is built when more sessions speak at once than the pool holds, on the event
loop and holding the GIL (a thread would not help), so it must be cheap: with the
full 135k-word dictionary it took 100-140 ms (and ~20 MB), stalling every session
and cancel; with a dictionary of just the grammar's words it takes ~10 ms.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Literal

from pocketsphinx import Config, Decoder
from pydantic import model_validator

from pipelines.models.base import Model, Seq
from streams.nodes.errors import BadInputError, NodeConfigError
from streams.nodes.items import AudioFrame, Item, TranscriptText
from streams.nodes.kind import builtin
from streams.nodes.node import NodeContext, NodeFactory
from streams.nodes.providers import ProviderPolicy

__all__ = ["KIND", "PocketsphinxConfig", "PocketsphinxNode", "grammar_from_phrases"]

_SEARCH = "rspp_grammar"
_PARTIAL_EVERY_FRAMES = 10  # 200 ms of 20 ms frames: enough for live captions, cheap to decode
_WORD = re.compile(r"[a-z']+")


class PocketsphinxConfig(Model):
    """Decode against a grammar or keyword list: the default LM mis-hears synthetic voices."""

    sample_rate_hz: Literal[16000] = 16000
    jsgf: str | None = None
    keywords: Seq[str] = ()  # whole expected phrases, turned into a grammar
    # Accepted for spec compatibility; unused: phrases become a grammar, not keyword spotting.
    keyword_threshold: float = 1e-20
    emit_partials: bool = True

    @model_validator(mode="after")
    def _grammar_or_keywords(self) -> PocketsphinxConfig:
        if not self.jsgf and not self.keywords:
            raise ValueError("needs 'jsgf' or 'keywords' (expected the utterances to recognise)")
        if self.jsgf and not self.jsgf.lstrip().startswith("#JSGF"):
            raise ValueError("'jsgf' must start with a '#JSGF V1.0;' header")
        return self

    def grammar(self) -> str:
        return self.jsgf or grammar_from_phrases(self.keywords)


def grammar_from_phrases(phrases: tuple[str, ...] | list[str]) -> str:
    """A JSGF grammar whose only sentences are ``phrases`` (lowercased, punctuation dropped)."""
    alternatives = sorted({" ".join(_WORD.findall(p.lower())) for p in phrases} - {""})
    if not alternatives:
        raise NodeConfigError("no usable words in the phrase list")
    body = " | ".join(f"( {a} )" for a in alternatives)
    return f"#JSGF V1.0;\ngrammar rspp;\npublic <utterance> = {body};\n"


_pool: dict[tuple[str, int], list[Any]] = {}


def _new_decoder(grammar: str, sample_rate: int) -> Any:
    # bestpath=False: the lattice best-path pass can end on a non-final grammar
    # state ("what time is it" -> "what"); the plain FSG search cannot.
    decoder = Decoder(
        samprate=sample_rate,
        lm=None,
        bestpath=False,
        loglevel="FATAL",
        dict=_grammar_dictionary(grammar),
    )
    try:
        decoder.add_jsgf_string(_SEARCH, grammar)
    except (RuntimeError, ValueError) as exc:
        raise NodeConfigError(f"invalid JSGF grammar: {exc}") from exc
    decoder.activate_search(_SEARCH)
    return decoder


@functools.cache
def _grammar_dictionary(grammar: str) -> str:
    """A pronunciation dictionary with only the grammar's words (every variant, e.g. the
    and the(2)), cut from the model's full one; a content-addressed file, shared by all
    decoders and processes using this grammar. A grammar search never looks beyond it."""
    words = set(_grammar_words(grammar))
    kept: list[str] = []
    found: set[str] = set()
    with Path(Config()["dict"]).open(encoding="utf-8") as full:
        for line in full:
            head = line.split(maxsplit=1)[0] if line.strip() else ""
            base = head.split("(", 1)[0]
            if base in words:
                kept.append(line if line.endswith("\n") else line + "\n")
                found.add(base)
    missing = sorted(words - found)
    if missing:
        raise NodeConfigError(f"grammar word {missing[0]!r} is not in the pocketsphinx dictionary")
    body = "".join(kept).encode()
    path = Path(tempfile.gettempdir()) / f"rspp-stt-{hashlib.sha256(body).hexdigest()[:16]}.dict"
    if not path.is_file() or path.read_bytes() != body:  # missing, or altered since
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(body)
        os.replace(partial, path)  # atomic: a concurrent process never reads half a file
    return str(path)


def _grammar_words(grammar: str) -> list[str]:
    # Drop header lines, rule names, tags and weights: what is left are the spoken words.
    body = "\n".join(
        line
        for line in grammar.splitlines()
        if not line.lstrip().startswith(("#JSGF", "grammar ", "import ", "//"))
    )
    body = re.sub(r"<[^>]*>|\{[^}]*\}|/[^/]*/|\bpublic\b", " ", body.lower())
    return sorted(set(_WORD.findall(body)))


def _acquire(grammar: str, sample_rate: int) -> Any:
    free = _pool.setdefault((grammar, sample_rate), [])
    return free.pop() if free else _new_decoder(grammar, sample_rate)


def _release(grammar: str, sample_rate: int, decoder: Any) -> None:
    _pool.setdefault((grammar, sample_rate), []).append(decoder)


def prewarm(config: PocketsphinxConfig) -> None:
    """Load one decoder now (graph build time) so the first turn does not pay for it."""
    grammar = config.grammar()
    _release(grammar, config.sample_rate_hz, _acquire(grammar, config.sample_rate_hz))


class PocketsphinxNode:
    """AudioFrame* -> TranscriptText (partials while decoding, one final at flush)."""

    def __init__(self, config: PocketsphinxConfig) -> None:
        self.config = config
        self._grammar = config.grammar()
        self._decoder: Any = None
        self._frames = 0
        self._last_partial = ""

    def _start(self) -> Any:
        if self._decoder is None:
            self._decoder = _acquire(self._grammar, self.config.sample_rate_hz)
            self._decoder.start_utt()
        return self._decoder

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        if not isinstance(item, AudioFrame):
            raise BadInputError(f"node {ctx.node_id!r} takes AudioFrame, got {type(item).__name__}")
        if item.sample_rate != self.config.sample_rate_hz or len(item.pcm) % 2:
            raise BadInputError(
                f"node {ctx.node_id!r}: frame seq={item.seq} must be PCM16 at "
                f"{self.config.sample_rate_hz} Hz (got {item.sample_rate} Hz, {len(item.pcm)} bytes)"
            )
        decoder = self._start()
        # A 20 ms frame decodes in well under a millisecond: inline beats a thread hop,
        # and keeps cancellation immediate (the next await is the runner's queue get).
        decoder.process_raw(item.pcm, False, False)
        self._frames += 1
        if self.config.emit_partials and self._frames % _PARTIAL_EVERY_FRAMES == 0:
            hyp = decoder.hyp()
            text = hyp.hypstr if hyp is not None else ""
            if text and text != self._last_partial:
                self._last_partial = text
                yield TranscriptText(text, final=False, confidence=_confidence(hyp))

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        del ctx
        if self._decoder is None:
            yield TranscriptText("", final=True, confidence=0.0)
            return
        decoder, self._decoder = self._decoder, None
        try:
            decoder.end_utt()
            hyp = decoder.hyp()
        finally:
            _release(self._grammar, self.config.sample_rate_hz, decoder)
        text = hyp.hypstr if hyp is not None else ""
        yield TranscriptText(text, final=True, confidence=_confidence(hyp) if text else 0.0)

    def close(self) -> None:
        # Cancelled mid-utterance: end it so the pooled decoder is clean for the next turn.
        if self._decoder is not None:
            decoder, self._decoder = self._decoder, None
            decoder.end_utt()
            _release(self._grammar, self.config.sample_rate_hz, decoder)


def _confidence(hyp: Any) -> float:
    # Hypothesis.prob is the posterior; the grammar search reports 1.0 when it has none.
    return 0.0 if hyp is None else round(min(1.0, max(0.0, float(hyp.prob))), 4)


def _prepare(config: PocketsphinxConfig, policy: ProviderPolicy) -> NodeFactory:
    del policy  # one local engine: nothing to fall back to
    prewarm(config)
    return lambda: PocketsphinxNode(config)


# Not replay-pure: the transcript depends on the installed acoustic model and dictionary,
# and the recorded audio it would need is L2 evidence, absent from most logs.
KIND = builtin("stt.pocketsphinx", io=("audio/pcm16", "text/transcript"), providers=("pocketsphinx",),
               config=PocketsphinxConfig, node=PocketsphinxNode, deterministic=False, prepare=_prepare)
