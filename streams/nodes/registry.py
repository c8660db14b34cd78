"""Node registry: ``type`` string -> :class:`NodeKind` (builder of per-turn node factories).

A builder parses the spec's config mapping into the node's frozen config
model once (graph build time) and returns a zero-argument factory the
runner calls per turn. :data:`BUILTINS` is the one list of built-in node
types; the artifact catalog derives its node types from it. Extension
packages (in-process or isolated behind a proxy node) register through
:meth:`NodeRegistry.register` with ``origin="extension"``; built-ins cannot
be silently shadowed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from streams.nodes import respond, stt, text, tts
from streams.nodes.errors import NodeConfigError, UnknownNodeTypeError
from streams.nodes.graph import EdgeSpec, Graph
from streams.nodes.kind import NodeBuilder, NodeKind
from streams.nodes.node import NodeFactory
from streams.nodes.providers import ProviderPolicy

__all__ = [
    "BUILTINS",
    "NodeBuilder",
    "NodeDecl",
    "NodeKind",
    "NodeRegistry",
    "build_graph",
    "default_registry",
]

# Every built-in node type, declared once in its own module (streams.nodes.kind.builtin).
BUILTINS: tuple[NodeKind, ...] = (stt.KIND, text.NORMALIZE, text.DROP_FILLERS, respond.KIND, tts.KIND)


@dataclass(frozen=True, slots=True)
class NodeDecl:
    """One resolved spec node: id, type, config mapping, provider policy, node budget."""

    node_id: str
    type_name: str
    config: Mapping[str, object] = field(default_factory=dict)
    policy: ProviderPolicy = field(default_factory=ProviderPolicy)
    budget_s: float | None = None


class NodeRegistry:
    def __init__(self, kinds: Sequence[NodeKind] = ()) -> None:
        self._kinds: dict[str, NodeKind] = {}
        for kind in kinds:
            self._kinds[kind.type_name] = kind

    def register(
        self,
        type_name: str,
        build: NodeBuilder,
        *,
        deterministic: bool,
        origin: str = "extension",
        replace: bool = False,
    ) -> None:
        """Add a node type (the hook for extension nodes)."""
        if type_name in self._kinds and not replace:
            raise NodeConfigError(f"node type {type_name!r} is already registered")
        self._kinds[type_name] = NodeKind(
            type_name=type_name, build=build, deterministic=deterministic, origin=origin
        )

    def kind(self, type_name: str) -> NodeKind:
        try:
            return self._kinds[type_name]
        except KeyError:
            raise UnknownNodeTypeError(
                f"unknown node type {type_name!r}; registered: {sorted(self._kinds)}"
            ) from None

    def is_deterministic(self, type_name: str) -> bool:
        """Whether replay may re-run ``type_name`` and expect its recorded outputs (unknown: no)."""
        kind = self._kinds.get(type_name)
        return kind is not None and kind.deterministic

    def types(self) -> tuple[str, ...]:
        return tuple(sorted(self._kinds))

    def create(
        self,
        type_name: str,
        *,
        node_id: str,
        config: Mapping[str, object],
        policy: ProviderPolicy | None = None,
    ) -> NodeFactory:
        return self.kind(type_name).build(node_id, config, policy or ProviderPolicy())


def build_graph(
    *,
    registry: NodeRegistry,
    nodes: Sequence[NodeDecl],
    edges: Sequence[EdgeSpec],
    entry: str,
    input_capacity: int = 16,
) -> Graph:
    """Build every node's config once and return the runnable graph."""
    factories = {
        n.node_id: registry.create(n.type_name, node_id=n.node_id, config=n.config, policy=n.policy)
        for n in nodes
    }
    budgets = {n.node_id: n.budget_s for n in nodes if n.budget_s is not None}
    return Graph(
        nodes=factories,
        edges=edges,
        entry=entry,
        input_capacity=input_capacity,
        timeouts_s=budgets,
        inline={n.node_id for n in nodes if registry.kind(n.type_name).inline},
    )


def default_registry() -> NodeRegistry:
    """A fresh registry holding the simple/v1 built-ins (the catalog's type names)."""
    return NodeRegistry(BUILTINS)
