"""``respond.rules``: a rule table maps a final transcript to an intent and a reply.

Rules are tried in table order and the first match wins, so the reply is a
pure function of (table, transcript). A ``match_any`` entry is a phrase
matched on word boundaries, or a regular expression when prefixed ``re:``.
Phrases and transcripts both pass through :func:`normalize_text` first, so a
rule written "five minutes" matches a transcript normalised to "5 minutes".
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from streams.nodes.config import config_from_mapping
from streams.nodes.errors import BadInputError, NodeConfigError
from streams.nodes.items import Item, ReplyText, TranscriptText
from streams.nodes.node import NodeContext
from streams.nodes.text import normalize_text

__all__ = ["DEFAULT_INTENT", "ReplyRule", "RulesConfig", "RulesNode"]

DEFAULT_INTENT = "default"


@dataclass(frozen=True, slots=True)
class ReplyRule:
    intent: str
    match_any: tuple[str, ...]
    reply: str

    def __post_init__(self) -> None:
        if not self.intent or not self.match_any or not self.reply:
            raise ValueError(f"rule {self.intent!r} needs intent, match_any and reply")


@dataclass(frozen=True, slots=True)
class RulesConfig:
    rules: tuple[ReplyRule, ...]
    default_reply: str

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object], *, node_id: str) -> RulesConfig:
        raw = mapping.get("rules")
        if not isinstance(raw, list | tuple) or not raw:
            raise NodeConfigError(
                f"node {node_id!r}: config field 'rules' must be a non-empty list"
            )
        rules = tuple(
            config_from_mapping(ReplyRule, _as_mapping(r, node_id, i), node_id=node_id)
            for i, r in enumerate(raw)
        )
        return config_from_mapping(cls, {**mapping, "rules": rules}, node_id=node_id)


def _as_mapping(value: object, node_id: str, index: int) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise NodeConfigError(f"node {node_id!r}: rules[{index}] must be a mapping")
    return value


def _pattern(entry: str) -> re.Pattern[str]:
    if entry.startswith("re:"):
        return re.compile(entry[3:], re.IGNORECASE)
    words = r"\s+".join(re.escape(w) for w in normalize_text(entry).split())
    return re.compile(rf"\b{words}\b", re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def _compiled(config: RulesConfig) -> tuple[tuple[Any, tuple[re.Pattern[str], ...]], ...]:
    # A node is created per turn; the rule table is compiled once per config.
    try:
        return tuple((rule, tuple(_pattern(m) for m in rule.match_any)) for rule in config.rules)
    except re.error as exc:
        raise NodeConfigError(f"respond.rules: bad regex in match_any: {exc}") from exc


class RulesNode:
    """Final TranscriptText -> ReplyText; partial transcripts are ignored."""

    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        self._table = _compiled(config)

    def reply_for(self, text: str) -> ReplyText:
        text = normalize_text(text)
        for rule, patterns in self._table:
            if any(p.search(text) for p in patterns):
                return ReplyText(rule.reply, rule.intent)
        return ReplyText(self.config.default_reply, DEFAULT_INTENT)

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        if not isinstance(item, TranscriptText):
            raise BadInputError(
                f"node {ctx.node_id!r} takes TranscriptText, got {type(item).__name__}"
            )
        if item.final:
            yield self.reply_for(item.text)

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        return
        yield

    def close(self) -> None:
        pass
