"""Errors raised by log readers, the replay engine and the audit store."""

from __future__ import annotations

__all__ = ["ReplayError"]


class ReplayError(Exception):
    """Root of every error raised by :mod:`replay`."""
