"""Low-cardinality label values: reasons are free text, labels must stay a small set.

A reason keeps only its leading words (ids, numbers and quoted values removed), and each
label keeps at most :data:`MAX_VALUES` distinct values; later newcomers are ``other``.
"""

from __future__ import annotations

import re

__all__ = ["MAX_VALUES", "LabelSet", "reason_tag"]

MAX_VALUES = 40
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NOT_WORD = re.compile(r"[^a-z_\- ]+")


def reason_tag(reason: str, *, drop: tuple[str, ...] = (), words: int = 3) -> str:
    """``reason`` reduced to a label value: its first ``words`` words before any ``:``,
    without the identifiers in ``drop`` (session, tenant), quoted values or numbers."""
    head = reason.split(":", 1)[0]
    for value in drop:
        if value:
            head = head.replace(value, " ")
    head = _NOT_WORD.sub(" ", _QUOTED.sub(" ", head).lower())
    kept = [w for w in (w.strip("-_") for w in head.split()) if w]
    return "_".join(kept[: max(words, 1)])[:48] or "unknown"


class LabelSet:
    """Admits at most ``limit`` distinct values, then answers ``other``."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int = MAX_VALUES) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return "other"
        self._seen.add(value)
        return value
