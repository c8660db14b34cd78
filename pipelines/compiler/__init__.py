"""ScaffoldCompiler: schema + semantic validation and normalisation into a ResolvedSpec.

    compiler = ScaffoldCompiler()
    issues = compiler.validate_spec(spec, modules={"transcription_normalize@1.0.0": module})
    resolved = compiler.normalize(spec, profile, (policy,), modules=..., extensions=())

``normalize`` raises :class:`~pipelines.errors.CompileError` carrying every
issue; issue ``file`` fields are artifact origins (``Kind/name@version``) that
:func:`pipelines.validate.attribute` maps back to files and YAML lines.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipelines.canonical import digest_of
from pipelines.catalog import NodeCatalog
from pipelines.compiler.defaults import SIMPLE_V1, SIMPLE_V1_SOURCE, first
from pipelines.compiler.graph import ExpandedGraph, check_graph, expand
from pipelines.compiler.resolve import (
    Layers,
    resolve_edges,
    resolve_inserts,
    resolve_lanes,
    resolve_nodes,
    resolve_turn_etc,
)
from pipelines.errors import CompileError, Issue
from pipelines.models.base import ArtifactBase, ArtifactRef
from pipelines.models.extension import ExtensionManifest
from pipelines.models.policy import PolicyOverlay
from pipelines.models.profile import ExecutionProfile
from pipelines.models.resolved import ResolvedSpec
from pipelines.models.spec import GraphModule, PipelineSpec

__all__ = ["SIMPLE_V1", "SIMPLE_V1_SOURCE", "ScaffoldCompiler", "artifact_ref"]


def artifact_ref(artifact: ArtifactBase) -> ArtifactRef:
    """Pin an artifact: name@version plus the digest of its canonical JSON."""
    return ArtifactRef(kind=artifact.kind, name=artifact.metadata.name, version=artifact.metadata.version,
                       digest=digest_of(artifact))


class ScaffoldCompiler:
    def __init__(self, *, catalog: NodeCatalog | None = None) -> None:
        self._catalog = catalog or NodeCatalog()

    def _graph(self, artifact: PipelineSpec | GraphModule, modules: Mapping[str, GraphModule],
               catalog: NodeCatalog) -> tuple[ExpandedGraph, list[Issue]]:
        graph, issues = expand(artifact, modules=modules, catalog=catalog)
        issues.extend(check_graph(graph, artifact.io, artifact.origin))
        return graph, issues

    def validate_spec(self, spec: PipelineSpec | GraphModule, *, modules: Mapping[str, GraphModule] | None = None,
                      extensions: tuple[ExtensionManifest, ...] = ()) -> list[Issue]:
        """Semantic checks that need no profile: refs, node types, IO, cycles, reachability."""
        return self._graph(spec, modules or {}, self._catalog.with_extensions(extensions))[1]

    def normalize(
        self, spec: PipelineSpec, profile: ExecutionProfile, overlays: tuple[PolicyOverlay, ...] = (), *,
        modules: Mapping[str, GraphModule] | None = None, extensions: tuple[ExtensionManifest, ...] = (),
    ) -> ResolvedSpec:
        """Compose the effective graph; every value records where it came from."""
        catalog = self._catalog.with_extensions(extensions)
        graph, issues = self._graph(spec, modules or {}, catalog)
        layers = Layers(spec=spec, profile=profile, policies=overlays, catalog=catalog)
        nodes = resolve_nodes(graph, layers, issues)
        edges = resolve_edges(graph, layers, issues)
        lanes = resolve_lanes(layers, issues)
        turn, shedding, admission = resolve_turn_etc(layers)
        by_id = {n.id: n for n in nodes}
        inserts = resolve_inserts(graph, by_id, layers, issues)
        issues.extend(self._policy_targets(graph, overlays, catalog))
        breakers: dict[str, dict[str, int]] = {}
        cost = first([(f"policy:{p.metadata.name}", p.cost.max_units_per_turn if p.cost else None)
                      for p in reversed(overlays)])
        for policy in overlays:
            for breaker in policy.circuit_breakers:
                breakers[breaker.provider] = breaker.model_dump(exclude={"provider"})
        if issues:
            raise CompileError(issues)
        policy_refs = tuple(artifact_ref(p) for p in overlays)
        return ResolvedSpec(
            resolved_spec_id="+".join([spec.ref, profile.ref, *(p.ref for p in overlays)]),
            spec=artifact_ref(spec), profile=artifact_ref(profile), policies=policy_refs,
            modules=tuple(artifact_ref(m) for _, m in sorted(graph.modules_used.items())),
            extensions=tuple(artifact_ref(e) for e in extensions),
            mode=first([("profile", profile.mode)], SIMPLE_V1.mode),  # type: ignore[arg-type]
            input=spec.io.input, output=spec.io.output, entry=graph.entry, exit=graph.exit,
            nodes=tuple(nodes), edges=tuple(edges), lanes=lanes, turn=turn, shedding=shedding,
            admission=admission, inserts=tuple(inserts), circuit_breakers=breakers,
            cost_max_units_per_turn=cost or {"value": None, "source": SIMPLE_V1_SOURCE},  # type: ignore[arg-type]
        )

    @staticmethod
    def _policy_targets(graph: ExpandedGraph, overlays: tuple[PolicyOverlay, ...],
                        catalog: NodeCatalog) -> list[Issue]:
        issues: list[Issue] = []
        providers = {p for n in graph.nodes.values() for p in n.node_type.providers}
        providers |= {p for t in catalog.types.values() for p in t.providers}
        types = {n.node_type.name for n in graph.nodes.values()}
        for policy in overlays:
            rules = [("providers", i, r.node, r.node_type) for i, r in enumerate(policy.providers)]
            rules += [("degrade", i, r.node, r.node_type) for i, r in enumerate(policy.degrade)]
            for section, i, node, node_type in rules:
                if node is not None and node not in graph.nodes:
                    issues.append(Issue(policy.origin, (section, i, "node"),
                                        f"unknown node {node!r} (expected one of: {', '.join(graph.nodes)})"))
                if node_type is not None and node_type not in types:
                    issues.append(Issue(policy.origin, (section, i, "node_type"),
                                        f"no node of type {node_type!r} in the graph (expected one of: "
                                        f"{', '.join(sorted(types))})"))
            for i, breaker in enumerate(policy.circuit_breakers):
                if breaker.provider not in providers:
                    issues.append(Issue(policy.origin, ("circuit_breakers", i, "provider"),
                                        f"unknown provider {breaker.provider!r} (expected one of: "
                                        f"{', '.join(sorted(providers))})"))
        return issues
