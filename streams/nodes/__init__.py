"""Graph execution: typed items, async cancellable nodes, providers, the simple/v1 built-ins.

The processor builds a :class:`Graph` once per plan (:func:`build_graph` with
:func:`default_registry`), then per turn calls :meth:`Graph.start_turn`,
feeds :class:`AudioFrame` items, and records every :class:`OutputReport`,
:class:`FallbackDecision` and :class:`NodeEnded` its reporter receives.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from streams.nodes.errors import (
    BadInputError,
    GraphError,
    NodeConfigError,
    NodeError,
    NodeTimeoutError,
    ProviderError,
    ProviderExhaustedError,
    UnknownNodeTypeError,
)
from streams.nodes.items import (
    END_OF_INPUT,
    AudioFrame,
    AudioOut,
    EndOfInput,
    Item,
    ReplyText,
    TranscriptText,
)
from streams.nodes.node import (
    FallbackDecision,
    Node,
    NodeContext,
    NodeEnded,
    NodeFactory,
    OutputReport,
    Report,
    Reporter,
)

if TYPE_CHECKING:
    from streams.nodes.audio import synthesize_pcm16
    from streams.nodes.graph import EdgeSpec, Graph, TurnOutcome, TurnRun
    from streams.nodes.providers import Provider, ProviderChain, ProviderPolicy
    from streams.nodes.registry import NodeDecl, NodeRegistry, build_graph, default_registry

# Loaded on first use: an extension worker needs the item types and the node protocol, not
# numpy, the built-in nodes and their config models (its start is on a turn's clock).
_LAZY = {
    "synthesize_pcm16": "streams.nodes.audio",
    **dict.fromkeys(("EdgeSpec", "Graph", "TurnOutcome", "TurnRun"), "streams.nodes.graph"),
    **dict.fromkeys(("Provider", "ProviderChain", "ProviderPolicy"), "streams.nodes.providers"),
    **dict.fromkeys(
        ("NodeDecl", "NodeRegistry", "build_graph", "default_registry"), "streams.nodes.registry"
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streams.nodes' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "END_OF_INPUT",
    "AudioFrame",
    "AudioOut",
    "BadInputError",
    "EdgeSpec",
    "EndOfInput",
    "FallbackDecision",
    "Graph",
    "GraphError",
    "Item",
    "Node",
    "NodeConfigError",
    "NodeContext",
    "NodeDecl",
    "NodeEnded",
    "NodeError",
    "NodeFactory",
    "NodeRegistry",
    "NodeTimeoutError",
    "OutputReport",
    "Provider",
    "ProviderChain",
    "ProviderError",
    "ProviderExhaustedError",
    "ProviderPolicy",
    "ReplyText",
    "Report",
    "Reporter",
    "TranscriptText",
    "TurnOutcome",
    "TurnRun",
    "UnknownNodeTypeError",
    "build_graph",
    "default_registry",
    "synthesize_pcm16",
]
