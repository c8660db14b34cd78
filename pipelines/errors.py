"""Errors raised while loading, validating, compiling and bundling artifacts."""

from __future__ import annotations

__all__ = ["PipelinesError"]


class PipelinesError(Exception):
    """Root of every error raised by :mod:`pipelines`."""
