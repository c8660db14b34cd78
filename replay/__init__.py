"""Replay: log readers, divergence checks, reports and the audit store."""

from __future__ import annotations

from replay.errors import ReplayError

__all__ = ["ReplayError"]
