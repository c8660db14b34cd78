"""Runnable graphs from frozen turn plans.

A plan's nodes and edges are turned into a :class:`streams.nodes.Graph` once
per distinct plan shape (bundle digest + node set) and reused for every turn
with that shape; building a graph loads models (pocketsphinx), so it must not
happen per turn. Turns whose input is already text (an upstream transcript)
enter the graph after its audio-input node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pipelines.models.resolved import ResolvedEdge, ResolvedNode
from streams.nodes import EdgeSpec, Graph, NodeDecl, NodeRegistry, ProviderPolicy, build_graph
from streams.runtime.errors import ProcessorError

__all__ = ["GraphCache", "PlanGraph", "PlanShape"]

_AUDIO = "audio/"


class PlanShape(Protocol):
    """What a graph is built from: a FrozenTurnPlan or a ResolvedTurnPlan."""

    @property
    def resolved_turn_plan_id(self) -> str: ...
    @property
    def bundle_digest(self) -> str: ...
    @property
    def nodes(self) -> Sequence[ResolvedNode]: ...
    @property
    def edges(self) -> Sequence[ResolvedEdge]: ...


@dataclass(frozen=True, slots=True)
class PlanGraph:
    """A graph plus the facts the turn driver needs about it."""

    graph: Graph
    entry: str
    sink: str
    entry_takes_audio: bool
    input_capacity: int


def _decl(node: ResolvedNode) -> NodeDecl:
    policy = ProviderPolicy(
        timeout_s=node.timeout_ms.value / 1000.0,
        retries=node.retries.value,
        providers=tuple(node.providers.value),
        degrade=node.degrade.value,
        reply=node.degrade_reply.value,
    )
    return NodeDecl(
        node_id=node.id,
        type_name=node.type,
        config=dict(node.config.value),
        policy=policy,
        budget_s=node.timeout_ms.value / 1000.0,
    )


def _sink(plan: PlanShape) -> str:
    sources = {e.source for e in plan.edges}
    sinks = [n.id for n in plan.nodes if n.id not in sources]
    if len(sinks) != 1:
        raise ProcessorError(
            f"plan {plan.resolved_turn_plan_id}: expected one sink node, found {sinks}"
        )
    return sinks[0]


def _entry(plan: PlanShape) -> str:
    targets = {e.target for e in plan.edges}
    entries = [n.id for n in plan.nodes if n.id not in targets]
    if len(entries) != 1:
        raise ProcessorError(
            f"plan {plan.resolved_turn_plan_id}: expected one entry node, found {entries}"
        )
    return entries[0]


class GraphCache:
    """Builds each plan shape's graph once (audio entry and text entry separately)."""

    def __init__(self, registry: NodeRegistry) -> None:
        self._registry = registry
        self._graphs: dict[
            tuple[str, tuple[tuple[str, tuple[str, ...], str, str], ...], bool], PlanGraph
        ] = {}

    def for_plan(self, plan: PlanShape, *, text_input: bool) -> PlanGraph:
        # Policy decisions change a node's providers or degrade mode without changing its id.
        shape = tuple(
            (n.id, tuple(n.providers.value), n.degrade.value, n.degrade.source) for n in plan.nodes
        )
        key = (plan.bundle_digest, shape, text_input)
        cached = self._graphs.get(key)
        if cached is None:
            cached = self._build(plan, text_input=text_input)
            self._graphs[key] = cached
        return cached

    def _build(self, plan: PlanShape, *, text_input: bool) -> PlanGraph:
        by_id = {n.id: n for n in plan.nodes}
        entry = _entry(plan)
        nodes = list(plan.nodes)
        edges = list(plan.edges)
        if text_input and by_id[entry].input.startswith(_AUDIO):
            # Skip the audio-input node: the transcript it would produce is the input.
            successors = [e.target for e in edges if e.source == entry]
            if len(successors) != 1:
                raise ProcessorError(
                    f"cannot enter plan {plan.resolved_turn_plan_id} with text after {entry}"
                )
            nodes = [n for n in nodes if n.id != entry]
            edges = [e for e in edges if e.source != entry]
            entry = successors[0]
        input_capacity = next((e.max_items.value for e in plan.edges if e.source == entry), 16)
        graph = build_graph(
            registry=self._registry,
            nodes=[_decl(n) for n in nodes],
            edges=[EdgeSpec(e.source, e.target, e.max_items.value) for e in edges],
            entry=entry,
            input_capacity=max(1, input_capacity),
        )
        return PlanGraph(
            graph=graph,
            entry=entry,
            sink=_sink(plan),
            entry_takes_audio=by_id[entry].input.startswith(_AUDIO),
            input_capacity=max(1, input_capacity),
        )
