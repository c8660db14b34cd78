"""Errors raised by :mod:`streams.nodes`; all derive from :class:`NodeError`."""

from __future__ import annotations

from streams.errors import StreamsError

__all__ = [
    "BadInputError",
    "GraphError",
    "NodeConfigError",
    "NodeError",
    "NodeTimeoutError",
    "ProviderError",
    "ProviderExhaustedError",
    "UnknownNodeTypeError",
]


class NodeError(StreamsError):
    """Root of every error raised by graph execution, nodes and providers."""


class NodeConfigError(NodeError):
    """A node's config mapping has an unknown, missing or mistyped field (names node and field)."""


class GraphError(NodeError):
    """A graph declaration is unusable: unknown node in an edge, a cycle, a zero capacity."""


class UnknownNodeTypeError(NodeError):
    """No factory is registered for a node ``type`` string."""


class BadInputError(NodeError):
    """A node received an item it cannot process (wrong type, sample rate, odd PCM length)."""


class NodeTimeoutError(NodeError):
    """A node or provider call overran its budget."""


class ProviderError(NodeError):
    """One provider call failed (the chain may retry or fall back)."""


class ProviderExhaustedError(ProviderError):
    """Every provider and retry in a chain failed and no degrade was configured."""
