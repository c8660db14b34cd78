"""``text.normalize`` and ``text.drop_fillers``: deterministic transcript clean-up.

Pure functions of the input text (no locale, no clock), so replay re-derives
exactly the recorded output.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

from pydantic import Field

from pipelines.models.base import Model, Seq
from streams.nodes.errors import BadInputError
from streams.nodes.items import Item, TranscriptText
from streams.nodes.kind import builtin
from streams.nodes.node import NodeContext

__all__ = [
    "DEFAULT_FILLERS",
    "DROP_FILLERS",
    "NORMALIZE",
    "DropFillersConfig",
    "DropFillersNode",
    "NormalizeConfig",
    "NormalizeNode",
    "drop_fillers",
    "normalize_text",
]

DEFAULT_FILLERS = ("um", "uh", "erm", "er", "hmm", "mm")

_UNIT_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS_WORDS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_UNITS = {w: i for i, w in enumerate(_UNIT_WORDS)}
_TENS = {w: 10 * i for i, w in enumerate(_TENS_WORDS, 2)}
# Keep apostrophes inside words ("what's"); everything else non-alphanumeric is a separator.
_PUNCT = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)|_")
_SPACE = re.compile(r"\s+")


def _numbers_to_digits(words: list[str]) -> list[str]:
    """'twenty five' -> '25', 'five' -> '5'; 'one' before a noun stays a digit too (simple/v1)."""
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in _TENS:
            value = _TENS[word]
            if i + 1 < len(words) and words[i + 1] in _UNITS and 0 < _UNITS[words[i + 1]] < 10:
                value += _UNITS[words[i + 1]]
                i += 1
            out.append(str(value))
        elif word in _UNITS:
            out.append(str(_UNITS[word]))
        else:
            out.append(word)
        i += 1
    return out


def normalize_text(
    text: str,
    *,
    lowercase: bool = True,
    strip_punctuation: bool = True,
    collapse_whitespace: bool = True,
    numbers_to_digits: bool = True,
    fillers: tuple[str, ...] = DEFAULT_FILLERS,
) -> str:
    """Lowercase, strip punctuation, drop fillers, number words -> digits, tidy spaces.

    Number conversion works on whole words, so it implies collapsed whitespace.
    """
    if lowercase:
        text = text.lower()
    if strip_punctuation:
        text = _PUNCT.sub(" ", text)
    if fillers:
        text = drop_fillers(text, fillers)
    if numbers_to_digits:
        text = " ".join(_numbers_to_digits(text.split()))
    elif collapse_whitespace:
        text = _SPACE.sub(" ", text).strip()
    return text


def drop_fillers(text: str, words: tuple[str, ...]) -> str:
    """Remove filler words and multi-word fillers ("you know"), longest match first."""
    phrases = sorted({tuple(w.lower().split()) for w in words} - {()}, key=len, reverse=True)
    tokens = text.split()
    keys = [t.lower().strip(",.!?") for t in tokens]
    out: list[str] = []
    i = 0
    while i < len(tokens):
        hit = next((p for p in phrases if tuple(keys[i : i + len(p)]) == p), None)
        if hit is None:
            out.append(tokens[i])
            i += 1
        else:
            i += len(hit)
    return " ".join(out)


class NormalizeConfig(Model):
    lowercase: bool = True
    strip_punctuation: bool = True
    collapse_whitespace: bool = True
    numbers_to_digits: bool = True
    # Empty by default: the text.drop_fillers node owns filler removal; the resolved
    # view states it, so the runtime never falls back to a hidden list.
    fillers: Seq[str] = ()


class DropFillersConfig(Model):
    words: Seq[str] = Field(min_length=1)


def _transcript(item: Item, ctx: NodeContext) -> TranscriptText:
    if not isinstance(item, TranscriptText):
        raise BadInputError(f"node {ctx.node_id!r} takes TranscriptText, got {type(item).__name__}")
    return item


class NormalizeNode:
    """TranscriptText -> TranscriptText (partials too, so captions stay consistent)."""

    def __init__(self, config: NormalizeConfig) -> None:
        self.config = config

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        t = _transcript(item, ctx)
        c = self.config
        text = normalize_text(
            t.text,
            lowercase=c.lowercase,
            strip_punctuation=c.strip_punctuation,
            collapse_whitespace=c.collapse_whitespace,
            numbers_to_digits=c.numbers_to_digits,
            fillers=c.fillers,
        )
        yield TranscriptText(text, t.final, t.confidence)

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        return
        yield  # an empty async generator

    def close(self) -> None:
        pass


class DropFillersNode:
    def __init__(self, config: DropFillersConfig) -> None:
        self.config = config

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        t = _transcript(item, ctx)
        yield TranscriptText(drop_fillers(t.text, self.config.words), t.final, t.confidence)

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        return
        yield

    def close(self) -> None:
        pass


_TEXT = ("text/transcript", "text/transcript")
# Pure functions of the text: replay re-runs them and expects the recorded output.
NORMALIZE = builtin("text.normalize", io=_TEXT, providers=("builtin",), config=NormalizeConfig,
                    node=NormalizeNode, deterministic=True, inline=True,
                    prepare=lambda config, _policy: lambda: NormalizeNode(config))
DROP_FILLERS = builtin("text.drop_fillers", io=_TEXT, providers=("builtin",),
                       config=DropFillersConfig, node=DropFillersNode, deterministic=True,
                       inline=True, prepare=lambda config, _policy: lambda: DropFillersNode(config))
