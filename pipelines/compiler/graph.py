"""Graph expansion and checks: module nodes expanded in place, then refs, IO, cycles, reachability.

Module nodes become ``<node id>.<inner id>``; spec edges into a module node go
to the module's entry, edges out of it leave from its exit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipelines.catalog import NodeCatalog, NodeType
from pipelines.errors import Issue
from pipelines.models.spec import EdgeSpec, GraphIO, GraphModule, NodeSpec, PipelineSpec

__all__ = ["ExpandedEdge", "ExpandedGraph", "ExpandedNode", "check_graph", "expand"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ExpandedNode:
    id: str
    spec: NodeSpec
    node_type: NodeType
    module: str | None  # name@version when the node came from a module
    origin: str  # artifact that declared it (for issue attribution)
    loc: Loc


@dataclass(frozen=True, slots=True)
class ExpandedEdge:
    source: str
    target: str
    spec: EdgeSpec
    module: str | None
    origin: str
    loc: Loc


@dataclass(slots=True)
class ExpandedGraph:
    nodes: dict[str, ExpandedNode] = field(default_factory=dict)
    edges: list[ExpandedEdge] = field(default_factory=list)
    entry: str = ""
    exit: str = ""
    modules_used: dict[str, GraphModule] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # module node id -> its exit node


def _add_node(
    graph: ExpandedGraph, node: NodeSpec, index: int, *, prefix: str, module: str | None, origin: str,
    catalog: NodeCatalog, issues: list[Issue],
) -> None:
    if node.type is None:
        return
    node_id = f"{prefix}{node.id}"
    known = catalog.get(node.type)
    if known is None:
        choices = ", ".join(sorted(catalog.types))
        issues.append(Issue(origin, ("nodes", index, "type"),
                            f"unknown node type {node.type!r} (expected one of: {choices}; "
                            "or add an ExtensionManifest)"))
        return
    if node.io is not None and (node.io.input, node.io.output) != (known.input, known.output):
        issues.append(Issue(origin, ("nodes", index, "io"),
                            f"declared io {node.io.input} -> {node.io.output} does not match {node.type} "
                            f"(expected {known.input} -> {known.output})"))
    graph.nodes[node_id] = ExpandedNode(node_id, node, known, module, origin, ("nodes", index))


def _endpoint(graph: ExpandedGraph, spec_nodes: Mapping[str, NodeSpec], name: str, *, outgoing: bool,
              modules: Mapping[str, GraphModule]) -> str:
    node = spec_nodes.get(name)
    if node is not None and node.module is not None and node.module in modules:
        io = modules[node.module].io
        return f"{name}.{io.exit if outgoing else io.entry}"
    return name


def expand(
    artifact: PipelineSpec | GraphModule, *, modules: Mapping[str, GraphModule], catalog: NodeCatalog,
) -> tuple[ExpandedGraph, list[Issue]]:
    """Expand module references and resolve node types. Unknown refs become issues."""
    origin = artifact.origin
    graph = ExpandedGraph()
    issues: list[Issue] = []
    seen: set[str] = set()
    for i, node in enumerate(artifact.nodes):
        if node.id in seen:
            issues.append(Issue(origin, ("nodes", i, "id"), f"duplicate node id {node.id!r} (expected unique ids)"))
        seen.add(node.id)
        if node.module is None:
            _add_node(graph, node, i, prefix="", module=None, origin=origin, catalog=catalog, issues=issues)
            continue
        if isinstance(artifact, GraphModule):
            issues.append(Issue(origin, ("nodes", i, "module"), "modules cannot import modules (expected 'type')"))
            continue
        module = modules.get(node.module)
        if module is None:
            known = ", ".join(sorted(modules)) or "none loaded"
            issues.append(Issue(origin, ("nodes", i, "module"),
                                f"unknown module {node.module!r} (expected one of: {known})"))
            continue
        graph.modules_used[node.module] = module
        graph.aliases[node.id] = f"{node.id}.{module.io.exit}"
        for j, inner in enumerate(module.nodes):
            _add_node(graph, inner, j, prefix=f"{node.id}.", module=node.module, origin=module.origin,
                      catalog=catalog, issues=issues)
        for j, edge in enumerate(module.edges):
            graph.edges.append(ExpandedEdge(f"{node.id}.{edge.source}", f"{node.id}.{edge.target}", edge,
                                            node.module, module.origin, ("edges", j)))
    spec_nodes = {n.id: n for n in artifact.nodes}
    for j, edge in enumerate(artifact.edges):
        for end in ("source", "target"):
            name = getattr(edge, end)
            if name not in spec_nodes:
                issues.append(Issue(origin, ("edges", j, end),
                                    f"unknown node {name!r} (expected one of: {', '.join(spec_nodes)})"))
        graph.edges.append(ExpandedEdge(
            _endpoint(graph, spec_nodes, edge.source, outgoing=True, modules=modules),
            _endpoint(graph, spec_nodes, edge.target, outgoing=False, modules=modules),
            edge, None, origin, ("edges", j)))
    for end, name in (("entry", artifact.io.entry), ("exit", artifact.io.exit)):
        if name not in spec_nodes:
            issues.append(Issue(origin, ("io", end), f"unknown node {name!r} (expected one of: {', '.join(spec_nodes)})"))
    graph.entry = _endpoint(graph, spec_nodes, artifact.io.entry, outgoing=False, modules=modules)
    graph.exit = _endpoint(graph, spec_nodes, artifact.io.exit, outgoing=True, modules=modules)
    return graph, issues


def _find_cycle(nodes: list[str], adjacency: Mapping[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in adjacency.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in nodes:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _reach(start: str, adjacency: Mapping[str, list[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in adjacency.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def check_graph(graph: ExpandedGraph, io: GraphIO, origin: str) -> list[Issue]:
    """IO type agreement, duplicate edges, cycles, unreachable and dead-end nodes."""
    issues: list[Issue] = []
    forward: dict[str, list[str]] = {n: [] for n in graph.nodes}
    backward: dict[str, list[str]] = {n: [] for n in graph.nodes}
    pairs: set[tuple[str, str]] = set()
    for edge in graph.edges:
        src, dst = graph.nodes.get(edge.source), graph.nodes.get(edge.target)
        if src is None or dst is None:
            continue  # already reported as an unknown node or type
        if (edge.source, edge.target) in pairs:
            issues.append(Issue(edge.origin, edge.loc, f"duplicate edge {edge.source} -> {edge.target}"))
        pairs.add((edge.source, edge.target))
        if src.node_type.output != dst.node_type.input:
            issues.append(Issue(edge.origin, edge.loc,
                                f"edge {edge.source} -> {edge.target} carries {src.node_type.output} "
                                f"(expected {dst.node_type.input}, the input of {dst.node_type.name})"))
        forward[edge.source].append(edge.target)
        backward[edge.target].append(edge.source)
    entry, exit_ = graph.nodes.get(graph.entry), graph.nodes.get(graph.exit)
    if entry is not None and entry.node_type.input != io.input:
        issues.append(Issue(origin, ("io", "input"),
                            f"entry {graph.entry} takes {entry.node_type.input} (expected io.input {io.input})"))
    if exit_ is not None and exit_.node_type.output != io.output:
        issues.append(Issue(origin, ("io", "output"),
                            f"exit {graph.exit} produces {exit_.node_type.output} (expected io.output {io.output})"))
    cycle = _find_cycle(sorted(graph.nodes), forward)
    if cycle:
        issues.append(Issue(origin, ("edges",), f"cycle {' -> '.join(cycle)} (expected an acyclic graph)"))
    if entry is not None and exit_ is not None:
        reachable = _reach(graph.entry, forward)
        to_exit = _reach(graph.exit, backward)
        for node in graph.nodes.values():
            if node.id not in reachable:
                issues.append(Issue(node.origin, node.loc,
                                    f"node {node.id!r} is unreachable from entry {graph.entry!r}"))
            elif node.id not in to_exit:
                issues.append(Issue(node.origin, node.loc,
                                    f"node {node.id!r} is a dead end (expected a path to exit {graph.exit!r})"))
    return issues
