"""A lexicon sentiment node: stateless, deterministic, annotation only (text unchanged)."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass

from streams.nodes.items import Item, TranscriptText
from streams.nodes.node import Node, NodeContext

__all__ = ["SentimentConfig", "SentimentNode", "build", "sentiment_label"]

POSITIVE = frozenset(
    [
        "good",
        "great",
        "love",
        "like",
        "nice",
        "thanks",
        "thank",
        "awesome",
        "happy",
        "excellent",
        "perfect",
        "wonderful",
        "please",
        "yes",
        "cool",
        "fantastic",
    ]
)
NEGATIVE = frozenset(
    [
        "bad",
        "hate",
        "terrible",
        "awful",
        "wrong",
        "broken",
        "angry",
        "annoying",
        "stupid",
        "useless",
        "no",
        "stop",
        "horrible",
        "worst",
        "sad",
    ]
)
NEGATIONS = frozenset(["not", "never", "dont", "don't", "isn't", "isnt", "no"])
_WORD = re.compile(r"[a-z']+")


@dataclass(frozen=True, slots=True, kw_only=True)
class SentimentConfig:
    labels: tuple[str, str, str] = ("positive", "neutral", "negative")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object]) -> SentimentConfig:
        unknown = set(mapping) - {"labels"}
        if unknown:
            raise ValueError(f"ext.sentiment: unknown config field(s) {sorted(unknown)}")
        labels = mapping.get("labels", cls().labels)
        if not isinstance(labels, list | tuple) or len(labels) != 3:
            raise ValueError(
                "ext.sentiment: 'labels' must list 3 names (positive, neutral, negative)"
            )
        return cls(labels=(str(labels[0]), str(labels[1]), str(labels[2])))


def sentiment_label(text: str, config: SentimentConfig = SentimentConfig()) -> str:
    """Sum of word polarities, a negation flipping the next word; sign picks the label."""
    score, flip = 0, False
    for word in _WORD.findall(text.lower()):
        if word in NEGATIONS and word != "no":
            flip = True
            continue
        polarity = (word in POSITIVE) - (word in NEGATIVE)
        score += -polarity if flip else polarity
        flip = False
    positive, neutral, negative = config.labels
    return positive if score > 0 else negative if score < 0 else neutral


class SentimentNode:
    """Passes transcripts through; ``last_label`` is the label of the last final one."""

    def __init__(self, config: SentimentConfig) -> None:
        self.config = config
        self.last_label: str | None = None

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        del ctx
        if not isinstance(item, TranscriptText):
            raise TypeError(f"ext.sentiment takes text/transcript, got {type(item).__name__}")
        if item.final:
            self.last_label = sentiment_label(item.text, self.config)
        yield item

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        del ctx
        return
        yield  # an async generator that emits nothing

    def close(self) -> None:
        self.last_label = None


def build(config: Mapping[str, object]) -> Callable[[], Node]:
    """The ``rspp.nodes`` entry point: parse the config once, return a per-turn factory."""
    parsed = SentimentConfig.from_mapping(config)
    return lambda: SentimentNode(parsed)
