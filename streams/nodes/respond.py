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
from collections.abc import AsyncGenerator
from typing import Any

from pydantic import Field

from pipelines.models.base import Model, Seq
from streams.nodes.errors import BadInputError, NodeConfigError
from streams.nodes.items import Item, ReplyText, TranscriptText
from streams.nodes.kind import builtin
from streams.nodes.node import NodeContext, NodeFactory
from streams.nodes.providers import ProviderPolicy
from streams.nodes.text import normalize_text

__all__ = ["DEFAULT_INTENT", "KIND", "ReplyRule", "RulesConfig", "RulesNode"]

DEFAULT_INTENT = "default"


class ReplyRule(Model):
    intent: str = Field(min_length=1)
    match_any: Seq[str] = Field(min_length=1)
    reply: str = Field(min_length=1)


class RulesConfig(Model):
    rules: Seq[ReplyRule] = Field(min_length=1)
    default_reply: str = Field(min_length=1)


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


def _prepare(config: RulesConfig, policy: ProviderPolicy) -> NodeFactory:
    del policy
    RulesNode(config)  # compile the patterns now: a bad regex fails the build, not a turn
    return lambda: RulesNode(config)


KIND = builtin("respond.rules", io=("text/transcript", "text/reply"), providers=("rules",),
               config=RulesConfig, node=RulesNode, deterministic=True, inline=True,
               prepare=_prepare)
