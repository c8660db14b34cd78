"""Normalisation: expanded graph + profile + policy overlays -> ResolvedSpec with sources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pipelines.catalog import NodeCatalog
from pipelines.compiler.defaults import SIMPLE_V1, first
from pipelines.compiler.graph import ExpandedEdge, ExpandedGraph, ExpandedNode
from pipelines.errors import Issue
from pipelines.loader import validation_issues
from pipelines.models.policy import PolicyOverlay
from pipelines.models.profile import ExecutionProfile
from pipelines.models.resolved import (
    ResolvedAdmission,
    ResolvedEdge,
    ResolvedInsert,
    ResolvedLanes,
    ResolvedNode,
    ResolvedShedding,
    ResolvedTurn,
    Sourced,
)
from pipelines.models.spec import DegradeAction, PipelineSpec

__all__ = [
    "Layers",
    "lane_weight_issues", "resolve_edges", "resolve_inserts", "resolve_lanes", "resolve_nodes", "resolve_turn_etc"]

_MAX_WEIGHT_SUM = 1000


@dataclass(frozen=True, slots=True)
class Layers:
    spec: PipelineSpec
    profile: ExecutionProfile
    policies: tuple[PolicyOverlay, ...]
    catalog: NodeCatalog


def _need(value: Sourced[Any] | None) -> Sourced[Any]:
    assert value is not None  # every call passes a simple/v1 default
    return value


def resolve_nodes(graph: ExpandedGraph, layers: Layers, issues: list[Issue]) -> list[ResolvedNode]:
    out: list[ResolvedNode] = []
    profile = layers.profile
    for node in graph.nodes.values():
        own = "spec" if node.module is None else "module default"
        spec = node.spec
        policy_timeout: list[tuple[str, int | None]] = []
        policy_retries: list[tuple[str, int | None]] = []
        policy_providers: list[tuple[str, tuple[str, ...] | None]] = []
        policy_degrade: list[tuple[str, DegradeAction | None]] = []
        policy_reply: list[tuple[str, str | None]] = []
        for policy in reversed(layers.policies):  # later overlays win
            tag = f"policy:{policy.metadata.name}"
            for rule in policy.providers:
                if rule.node == node.id or rule.node_type == node.node_type.name:
                    policy_timeout.append((tag, rule.timeout_ms))
                    policy_retries.append((tag, rule.retries))
                    policy_providers.append((tag, tuple(rule.order)))
            for d in policy.degrade:
                if d.node == node.id or d.node_type == node.node_type.name:
                    policy_degrade.append((tag, d.action))
                    policy_reply.append((tag, d.reply))
        fallback = spec.fallback
        timeout = first([*policy_timeout, (own, spec.budget.timeout_ms if spec.budget else None),
                         ("profile", profile.budget_defaults.node_timeout_ms)])
        if timeout is None:
            issues.append(Issue(node.origin, (*node.loc, "budget"),
                                f"node {node.id!r} has no budget (expected budget.timeout_ms in the spec, "
                                "budget_defaults.node_timeout_ms in the profile, or a policy timeout_ms)"))
            continue
        providers = _need(first([*policy_providers, (own, tuple(fallback.providers) if fallback and
                                 fallback.providers is not None else None)], node.node_type.providers))
        unknown = [p for p in providers.value if p not in node.node_type.providers]
        if unknown:
            issues.append(Issue(node.origin, (*node.loc, "fallback", "providers"),
                                f"unknown providers {unknown} for {node.node_type.name} (source {providers.source}; "
                                f"expected some of {list(node.node_type.providers)})"))
        degrade = _need(first([*policy_degrade, (own, fallback.degrade if fallback else None)], SIMPLE_V1.degrade))
        reply: Sourced[str | None] | None = first([*policy_reply, (own, fallback.reply if fallback else None)])
        if degrade.value == "canned_reply" and (reply is None or not reply.value):
            issues.append(Issue(node.origin, (*node.loc, "fallback"),
                                f"node {node.id!r} degrades to canned_reply without a reply (expected fallback.reply)"))
        config = dict(spec.config)
        if node.node_type.config_model is not None:
            try:
                config = node.node_type.config_model.model_validate(config).model_dump(mode="json")
            except ValidationError as exc:
                issues.extend(validation_issues(exc, file=node.origin, positions={}, prefix=(*node.loc, "config"),
                                                model=node.node_type.config_model))
                continue
        out.append(ResolvedNode(
            id=node.id, type=node.node_type.name, module=node.module, input=node.node_type.input,
            output=node.node_type.output, package=node.node_type.package,
            config=Sourced[dict[str, Any]](value=config, source=own),
            timeout_ms=timeout,
            retries=_need(first([*policy_retries, (own, fallback.retries if fallback else None),
                                 ("profile", profile.budget_defaults.retries)], SIMPLE_V1.retries)),
            providers=providers, degrade=degrade,
            degrade_reply=reply or Sourced[str | None](value=None, source="simple/v1 default"),
        ))
    return out


def _edge(edge: ExpandedEdge, graph: ExpandedGraph, layers: Layers, issues: list[Issue]) -> ResolvedEdge | None:
    own = "spec" if edge.module is None else "module default"
    buf, prof = edge.spec.buffer, layers.profile.buffer_defaults

    def pick(name: str) -> Sourced[Any]:
        return _need(first([(own, getattr(buf, name) if buf else None), ("profile", getattr(prof, name))],
                           getattr(SIMPLE_V1, name)))

    max_items, high, low = pick("max_items"), pick("high_watermark"), pick("low_watermark")
    overflow, block = pick("overflow"), pick("max_block_ms")
    lane = _need(first([(own, edge.spec.lane)], SIMPLE_V1.edge_lane))
    name = f"edge {edge.source} -> {edge.target}"
    loc = (*edge.loc, "buffer")
    ok = True
    if max_items.value == 0:
        issues.append(Issue(edge.origin, (*loc, "max_items"),
                            f"{name} buffer is unbounded (source {max_items.source}; expected max_items >= 1)"))
        ok = False
    elif not low.value < high.value <= max_items.value:
        issues.append(Issue(edge.origin, loc,
                            f"{name} watermarks low={low.value} high={high.value} max={max_items.value} "
                            "(expected low_watermark < high_watermark <= max_items)"))
        ok = False
    mode = layers.profile.mode or SIMPLE_V1.mode
    if overflow.value == "block" and lane.value == "data" and mode == "low_latency":
        limit = layers.profile.shedding.max_data_block_ms
        limit = SIMPLE_V1.max_data_block_ms if limit is None else limit
        if block.value == 0 or block.value > limit:
            issues.append(Issue(edge.origin, (*loc, "overflow"),
                                f"{name} may block the data lane for {block.value or 'unbounded'} ms in low_latency "
                                f"mode (expected drop_oldest/drop_newest or max_block_ms in 1..{limit})"))
            ok = False
    src = graph.nodes.get(edge.source)
    if src is None or edge.target not in graph.nodes or not ok:
        return None
    return ResolvedEdge(source=edge.source, target=edge.target, media_type=src.node_type.output, lane=lane,
                        max_items=max_items, high_watermark=high, low_watermark=low, overflow=overflow,
                        max_block_ms=block)


def resolve_edges(graph: ExpandedGraph, layers: Layers, issues: list[Issue]) -> list[ResolvedEdge]:
    return [e for e in (_edge(edge, graph, layers, issues) for edge in graph.edges) if e is not None]


def lane_weight_issues(origin: str, weights: Mapping[str, int], loc: tuple[str | int, ...]) -> list[Issue]:
    """Data and telemetry weights only (control is strict), each >= 1, data >= telemetry, bounded sum."""
    issues: list[Issue] = []
    bad = sorted(set(weights) - {"data", "telemetry"})
    if bad:
        issues.append(Issue(origin, loc, f"unexpected lanes {bad} (expected data and telemetry; "
                            "control is strict priority)"))
    if any(w < 1 for w in weights.values()):
        issues.append(Issue(origin, loc, f"weights {dict(weights)} (expected every weight >= 1)"))
    elif weights.get("data", 1) < weights.get("telemetry", 1):
        issues.append(Issue(origin, loc, f"weights {dict(weights)} put telemetry above data "
                            "(expected data >= telemetry)"))
    elif sum(weights.values()) > _MAX_WEIGHT_SUM:
        issues.append(Issue(origin, loc, f"weights sum to {sum(weights.values())} (expected at most "
                            f"{_MAX_WEIGHT_SUM})"))
    return issues


def resolve_lanes(layers: Layers, issues: list[Issue]) -> ResolvedLanes:
    spec_l, prof_l = layers.spec.lanes, layers.profile.lane_defaults
    if spec_l and spec_l.weights is not None:
        issues.extend(lane_weight_issues(layers.spec.origin, spec_l.weights, ("lanes", "weights")))
    if prof_l.weights is not None:
        issues.extend(lane_weight_issues(layers.profile.origin, prof_l.weights, ("lane_defaults", "weights")))

    def weight(lane: str, default: int) -> Sourced[Any]:
        return _need(first([("spec", (spec_l.weights or {}).get(lane) if spec_l else None),
                            ("profile", (prof_l.weights or {}).get(lane))], default))

    def queue(lane: str, default: int) -> Sourced[Any]:
        return _need(first([("profile", (prof_l.queue_max_items or {}).get(lane))], default))

    return ResolvedLanes(
        control=_need(first([("spec", spec_l.control if spec_l else None), ("profile", prof_l.control)],
                            SIMPLE_V1.control)),
        data_weight=weight("data", SIMPLE_V1.data_weight),
        telemetry_weight=weight("telemetry", SIMPLE_V1.telemetry_weight),
        control_queue_max_items=queue("control", SIMPLE_V1.control_queue_max_items),
        data_queue_max_items=queue("data", SIMPLE_V1.data_queue_max_items),
        telemetry_queue_max_items=queue("telemetry", SIMPLE_V1.telemetry_queue_max_items),
    )


def resolve_turn_etc(layers: Layers) -> tuple[ResolvedTurn, ResolvedShedding, ResolvedAdmission]:
    spec_t, prof = layers.spec.turn, layers.profile
    adm, shed = prof.admission, prof.shedding
    turn = ResolvedTurn(
        boundary=_need(first([("spec", spec_t.boundary if spec_t else None), ("profile", prof.turn_defaults.boundary)],
                             SIMPLE_V1.turn_boundary)),
        timeout_ms=_need(first([("spec", spec_t.timeout_ms if spec_t else None),
                                ("profile", prof.turn_defaults.timeout_ms)], SIMPLE_V1.turn_timeout_ms)),
    )
    shedding = ResolvedShedding(
        mode=_need(first([("profile", shed.mode)], SIMPLE_V1.shed_mode)),
        shed_order=_need(first([("profile", tuple(shed.shed_order) if shed.shed_order else None)],
                               SIMPLE_V1.shed_order)),
        max_data_block_ms=_need(first([("profile", shed.max_data_block_ms)], SIMPLE_V1.max_data_block_ms)),
    )
    drain = adm.draining
    admission = ResolvedAdmission(
        max_concurrent_turns_per_session=_need(first([("profile", adm.max_concurrent_turns_per_session)],
                                                     SIMPLE_V1.max_concurrent_turns_per_session)),
        max_concurrent_turns_per_tenant=_need(first([("profile", adm.max_concurrent_turns_per_tenant)],
                                                    SIMPLE_V1.max_concurrent_turns_per_tenant)),
        on_limit=_need(first([("profile", adm.on_limit)], SIMPLE_V1.on_limit)),
        drain_grace_ms=_need(first([("profile", drain.grace_ms if drain else None)], SIMPLE_V1.drain_grace_ms)),
        drain_reject_new_sessions=_need(first([("profile", drain.reject_new_sessions if drain else None)],
                                              SIMPLE_V1.drain_reject_new_sessions)),
    )
    return turn, shedding, admission


def resolve_inserts(
    graph: ExpandedGraph, nodes: Mapping[str, ResolvedNode], layers: Layers, issues: list[Issue]
) -> list[ResolvedInsert]:
    out: list[ResolvedInsert] = []
    for policy in layers.policies:
        for i, rule in enumerate(policy.inserts):
            loc: tuple[str | int, ...] = ("inserts", i)
            after_id = graph.aliases.get(rule.after, rule.after)
            after: ExpandedNode | None = graph.nodes.get(after_id)
            if after is None:
                issues.append(Issue(policy.origin, (*loc, "after"),
                                    f"unknown node {rule.after!r} (expected one of: {', '.join(nodes)})"))
                continue
            kind = layers.catalog.get(rule.node.type)
            if kind is None:
                issues.append(Issue(policy.origin, (*loc, "node", "type"),
                                    f"unknown node type {rule.node.type!r} (expected a built-in type or one "
                                    "declared by an ExtensionManifest in the bundle)"))
                continue
            media = after.node_type.output
            if (kind.input, kind.output) != (media, media):
                issues.append(Issue(policy.origin, (*loc, "node", "type"),
                                    f"{kind.name} maps {kind.input} -> {kind.output} (expected {media} -> {media} "
                                    f"to fit after {after_id})"))
                continue
            timeout = rule.node.budget.timeout_ms if rule.node.budget else None
            timeout = timeout or layers.profile.budget_defaults.node_timeout_ms
            if timeout is None:
                issues.append(Issue(policy.origin, (*loc, "node", "budget"), "inserted node has no budget "
                                    "(expected node.budget.timeout_ms or a profile node_timeout_ms)"))
                continue
            before = tuple(sorted(e.target for e in graph.edges if e.source == after_id))
            out.append(ResolvedInsert(id=rule.id, after=after_id, before=before, node=rule.node, package=kind.package,
                                      providers=kind.providers,
                                      timeout_ms=timeout, default_enabled=rule.default_enabled,
                                      source=f"policy:{policy.metadata.name}"))
    return out
