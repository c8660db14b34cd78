"""Canonical JSON and digests: the one way RSPP turns artifacts into bytes and hashes.

Canonical JSON is ``orjson`` with sorted keys and no indentation, so the same
value gives the same bytes in every process, whatever ``PYTHONHASHSEED`` is.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel

__all__ = ["canonical_json", "digest_of", "sha256_digest"]


def canonical_json(value: Any) -> bytes:
    """Canonical bytes of a JSON-able value or a pydantic model (dumped in JSON mode)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of raw bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_of(value: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``value``."""
    return sha256_digest(canonical_json(value))
