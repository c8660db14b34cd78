"""Node registry: ``type`` string -> builder of per-turn node factories.

A builder parses the spec's config mapping into the node's frozen config
dataclass once (graph build time) and returns a zero-argument factory the
runner calls per turn. Extension packages (in-process or isolated behind a
proxy node) register through :meth:`NodeRegistry.register` with
``origin="extension"``; built-ins cannot be silently shadowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from streams.nodes.config import config_from_mapping
from streams.nodes.errors import NodeConfigError, UnknownNodeTypeError
from streams.nodes.graph import EdgeSpec, Graph
from streams.nodes.node import NodeFactory
from streams.nodes.providers import ProviderPolicy
from streams.nodes.respond import RulesConfig, RulesNode
from streams.nodes.stt import PocketsphinxConfig, PocketsphinxNode, prewarm
from streams.nodes.text import DropFillersConfig, DropFillersNode, NormalizeConfig, NormalizeNode
from streams.nodes.tts import EspeakConfig, EspeakNode

__all__ = ["NodeBuilder", "NodeDecl", "NodeKind", "NodeRegistry", "build_graph", "default_registry"]

NodeBuilder = Callable[[str, Mapping[str, object], ProviderPolicy], NodeFactory]


@dataclass(frozen=True, slots=True)
class NodeKind:
    type_name: str
    build: NodeBuilder
    deterministic: bool
    origin: str = "builtin"  # or "extension"
    # process/flush never await: may run inside its upstream's task (streams.nodes.fusion).
    inline: bool = False


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
        self._kinds[type_name] = NodeKind(type_name, build, deterministic, origin)

    def kind(self, type_name: str) -> NodeKind:
        try:
            return self._kinds[type_name]
        except KeyError:
            raise UnknownNodeTypeError(
                f"unknown node type {type_name!r}; registered: {sorted(self._kinds)}"
            ) from None

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


def _stt(node_id: str, mapping: Mapping[str, object], policy: ProviderPolicy) -> NodeFactory:
    del policy  # one local engine: nothing to fall back to
    config = config_from_mapping(PocketsphinxConfig, mapping, node_id=node_id)
    prewarm(config)
    return lambda: PocketsphinxNode(config)


def _normalize(node_id: str, mapping: Mapping[str, object], policy: ProviderPolicy) -> NodeFactory:
    del policy
    config = config_from_mapping(NormalizeConfig, mapping, node_id=node_id)
    return lambda: NormalizeNode(config)


def _fillers(node_id: str, mapping: Mapping[str, object], policy: ProviderPolicy) -> NodeFactory:
    del policy
    config = config_from_mapping(DropFillersConfig, mapping, node_id=node_id)
    return lambda: DropFillersNode(config)


def _rules(node_id: str, mapping: Mapping[str, object], policy: ProviderPolicy) -> NodeFactory:
    del policy
    config = RulesConfig.from_mapping(mapping, node_id=node_id)
    RulesNode(config)  # compile the patterns now: a bad regex fails the build, not a turn
    return lambda: RulesNode(config)


def _tts(node_id: str, mapping: Mapping[str, object], policy: ProviderPolicy) -> NodeFactory:
    config = config_from_mapping(EspeakConfig, mapping, node_id=node_id)
    EspeakNode.build(config, policy)  # resolve provider names now
    return lambda: EspeakNode.build(config, policy)


def default_registry() -> NodeRegistry:
    """A fresh registry holding the simple/v1 built-ins (the catalog's type names)."""
    return NodeRegistry(
        [
            NodeKind("stt.pocketsphinx", _stt, deterministic=True),
            NodeKind("text.normalize", _normalize, deterministic=True, inline=True),
            NodeKind("text.drop_fillers", _fillers, deterministic=True, inline=True),
            NodeKind("respond.rules", _rules, deterministic=True, inline=True),
            # espeak-ng output is stable per installed version, not across versions: not replay-pure.
            NodeKind("tts.espeak_ng", _tts, deterministic=False),
        ]
    )
