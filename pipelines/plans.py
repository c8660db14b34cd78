"""TurnPlanResolver: freeze a bundle plus turn-open snapshots into a ResolvedTurnPlan.

The runtime calls, once per accepted turn at OPEN::

    plan = TurnPlanResolver().resolve(
        bundle=bundle,                      # PipelineBundle (verified when loaded)
        session=SessionSnapshot(tenant_id=..., session_id=..., pinned_bundle_digest=bundle.digest,
                                next_seq=..., last_epoch=..., open_turns=...),
        turn=TurnOpenRequest(turn_id=..., trigger="final_transcript", correlation_id=..., opened_at_us=...),
        lease=LeaseSnapshot(epoch=..., holder=..., partition=...),
        routing=RoutingSnapshot(topic_prefix=..., partition=..., processor_id=...),
        policy_decisions=PolicyDecisions(open_circuits=(...), enabled_inserts=(...)),
    )
    plan.plan_hash   # "sha256:<hex>" of the canonical JSON of the plan without plan_hash

The plan embeds every input (``plan.inputs``), so replay re-derives it from the
recorded bundle alone: ``TurnPlanResolver().verify(recorded_plan, bundle)``
raises :class:`~pipelines.errors.PlanError` when the hash differs. The plan
never changes during a turn (invariant 4); decisions are taken only here.

Resolution refuses a session pinned to another bundle (invariant 3), a lease
older than the session's last epoch (invariant 12), routing on another
partition than the lease, and decisions naming unknown inserts, providers or nodes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import ValidationError

from pipelines.canonical import digest_of
from pipelines.errors import PlanError
from pipelines.models.plan import (
    DeterminismContext,
    LeaseSnapshot,
    PlanInputs,
    PolicyDecisions,
    ResolvedTurnPlan,
    RoutingSnapshot,
    SessionSnapshot,
    TurnOpenRequest,
)
from pipelines.models.resolved import (
    PipelineBundle,
    ResolvedEdge,
    ResolvedInsert,
    ResolvedNode,
    Sourced,
)

__all__ = ["PLAN_VERSION", "TurnPlanResolver", "plan_from_json", "plan_hash"]

PLAN_VERSION = 1
_DECISION = "decision"


def plan_hash(plan: ResolvedTurnPlan | dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a plan without its ``plan_hash`` field."""
    data = plan.model_dump(mode="json") if isinstance(plan, ResolvedTurnPlan) else dict(plan)
    data.pop("plan_hash", None)
    return digest_of(data)


def plan_from_json(data: bytes | str) -> ResolvedTurnPlan:
    """Read a recorded plan and check its hash."""
    try:
        plan = ResolvedTurnPlan.model_validate_json(data)
    except ValidationError as exc:
        raise PlanError(f"recorded plan is malformed: {exc.error_count()} problems, first: "
                        f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    actual = plan_hash(plan)
    if actual != plan.plan_hash:
        raise PlanError(f"plan {plan.resolved_turn_plan_id}: recorded plan_hash {plan.plan_hash} but content "
                        f"hashes to {actual} (expected an untouched plan)")
    return plan


def _insert_node(ins: ResolvedInsert) -> ResolvedNode:
    return ResolvedNode(
        id=ins.node.id, type=ins.node.type, module=None, input="", output="",  # set by the splice
        package=ins.package, config=Sourced[dict[str, Any]](value=dict(ins.node.config), source=ins.source),
        timeout_ms=Sourced[int](value=ins.timeout_ms, source=ins.source),
        retries=Sourced[int](value=0, source=ins.source),
        providers=Sourced[tuple[str, ...]](value=tuple(ins.providers), source=ins.source),
        degrade=Sourced[str](value="skip", source=ins.source),
        degrade_reply=Sourced[str | None](value=None, source=ins.source),
    )


class TurnPlanResolver:
    """One instance may serve every turn of every session.

    Its only state is a bounded cache of each (bundle, policy decisions) pair's
    plan graph as JSON: that part does not change between turns, and building it
    is most of the cost of a plan.
    """

    def __init__(self) -> None:
        self._graphs: dict[tuple[str, str], tuple[list[Any], list[Any]]] = {}

    def resolve(
        self, *, bundle: PipelineBundle, session: SessionSnapshot, turn: TurnOpenRequest, lease: LeaseSnapshot,
        routing: RoutingSnapshot, policy_decisions: PolicyDecisions | None = None,
    ) -> ResolvedTurnPlan:
        inputs = PlanInputs(session=session, turn=turn, lease=lease, routing=routing,
                            policy_decisions=policy_decisions or PolicyDecisions())
        return self._resolve(bundle, inputs)

    def rederive(self, plan: ResolvedTurnPlan, bundle: PipelineBundle) -> ResolvedTurnPlan:
        """Re-run resolution from the inputs recorded in ``plan``."""
        return self._resolve(bundle, plan.inputs)

    def verify(self, plan: ResolvedTurnPlan, bundle: PipelineBundle) -> None:
        """Raise PlanError unless re-deriving ``plan`` from ``bundle`` gives the same hash."""
        again = self.rederive(plan, bundle)
        if again.plan_hash != plan.plan_hash:
            raise PlanError(f"plan {plan.resolved_turn_plan_id}: recorded {plan.plan_hash}, re-derived from "
                            f"{bundle.ref} ({bundle.digest}) gives {again.plan_hash}")

    # -- internals -------------------------------------------------------------------------
    def rederive_hash(self, plan: ResolvedTurnPlan, bundle: PipelineBundle) -> str:
        """The plan_hash re-derivation gives, without building the plan model (replay's hot path)."""
        return self._body(bundle, plan.inputs)["plan_hash"]  # type: ignore[no-any-return]

    def _resolve(self, bundle: PipelineBundle, inputs: PlanInputs) -> ResolvedTurnPlan:
        return ResolvedTurnPlan.model_validate_json(orjson.dumps(self._body(bundle, inputs)))

    def _body(self, bundle: PipelineBundle, inputs: PlanInputs) -> dict[str, Any]:
        self._check_authority(bundle, inputs)
        rs = bundle.resolved_spec
        key = (bundle.digest, inputs.policy_decisions.model_dump_json())
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graph(bundle, inputs)
            if len(self._graphs) >= 64:  # bounded: a processor sees few bundles x decision sets
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = graph
        nodes_json, edges_json = graph
        body = {
            "resolved_turn_plan_id": f"{inputs.session.tenant_id}/{inputs.session.session_id}/{inputs.turn.turn_id}",
            "plan_version": PLAN_VERSION,
            "bundle_id": bundle.ref,
            "bundle_digest": bundle.digest,
            "abi_version": bundle.compat_window.abi_version,
            "inputs": inputs.model_dump(mode="json"),
            "nodes": nodes_json,
            "edges": edges_json,
            "turn_boundary": rs.turn.boundary.value,
            "turn_timeout_ms": rs.turn.timeout_ms.value,
            "determinism_context": DeterminismContext(seed=self._seed(bundle, inputs), clock="recorded").model_dump(),
        }
        body["plan_hash"] = digest_of(body)
        return body

    def _graph(self, bundle: PipelineBundle, inputs: PlanInputs) -> tuple[list[Any], list[Any]]:
        """The plan's nodes and edges as JSON values: a function of the bundle and the decisions only."""
        rs = bundle.resolved_spec
        decisions = inputs.policy_decisions
        nodes = {n.id: n for n in rs.nodes}
        inserts = {i.id: i for i in rs.inserts}
        providers = {p for n in rs.nodes for p in n.providers.value}
        for what, names, known in (("insert", decisions.enabled_inserts, inserts),
                                   ("provider", decisions.open_circuits, providers),
                                   ("node", decisions.degraded_nodes, nodes)):
            unknown = sorted(set(names) - set(known))
            if unknown:
                raise PlanError(f"policy decisions name unknown {what}s {unknown} (expected some of "
                                f"{sorted(known)} from {bundle.ref})")
        open_circuits = set(decisions.open_circuits)
        degraded = set(decisions.degraded_nodes)
        plan_nodes: list[ResolvedNode] = []
        for base in rs.nodes:
            node = base
            live = tuple(p for p in node.providers.value if p not in open_circuits)
            if live != tuple(node.providers.value):
                node = node.model_copy(update={"providers": Sourced[tuple[str, ...]](value=live, source=_DECISION)})
            if not live or node.id in degraded:
                node = node.model_copy(update={"degrade": Sourced[str](value=node.degrade.value, source=_DECISION)})
            plan_nodes.append(node)
        edges = list(rs.edges)
        enabled = {i.id for i in rs.inserts if i.default_enabled} | set(decisions.enabled_inserts)
        for ins in sorted((inserts[i] for i in enabled), key=lambda i: i.id):
            plan_nodes, edges = self._splice(ins, plan_nodes, edges, nodes)
        return [n.model_dump(mode="json") for n in plan_nodes], [e.model_dump(mode="json") for e in edges]

    @staticmethod
    def _check_authority(bundle: PipelineBundle, inputs: PlanInputs) -> None:
        s, lease = inputs.session, inputs.lease
        if s.pinned_bundle_digest != bundle.digest:
            raise PlanError(f"session {s.session_id} is pinned to {s.pinned_bundle_digest}, not {bundle.ref} "
                            f"({bundle.digest}); sessions never change bundle mid-life")
        if lease.epoch < s.last_epoch:
            raise PlanError(f"stale lease: epoch {lease.epoch} held by {lease.holder} is older than the session's "
                            f"last epoch {s.last_epoch} (expected >= {s.last_epoch})")
        if inputs.routing.partition != lease.partition:
            raise PlanError(f"routing partition {inputs.routing.partition} differs from the lease's partition "
                            f"{lease.partition}")

    @staticmethod
    def _seed(bundle: PipelineBundle, inputs: PlanInputs) -> int:
        key = "\x00".join((bundle.digest, inputs.session.tenant_id, inputs.session.session_id, inputs.turn.turn_id))
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")

    @staticmethod
    def _splice(ins: ResolvedInsert, nodes: list[ResolvedNode], edges: list[ResolvedEdge],
                base: dict[str, ResolvedNode]) -> tuple[list[ResolvedNode], list[ResolvedEdge]]:
        if any(n.id == ins.node.id for n in nodes):
            raise PlanError(f"insert {ins.id} adds node {ins.node.id!r}, which already exists")
        after = base[ins.after]
        new = _insert_node(ins).model_copy(update={"input": after.output, "output": after.output})
        at = next(i for i, n in enumerate(nodes) if n.id == ins.after) + 1
        nodes = [*nodes[:at], new, *nodes[at:]]
        out: list[ResolvedEdge] = []
        first = True
        for edge in edges:
            if edge.source != ins.after:
                out.append(edge)
                continue
            if first:  # one edge into the inserted node, with the original edge's bounds
                out.append(edge.model_copy(update={"target": new.id}))
                first = False
            out.append(edge.model_copy(update={"source": new.id}))
        return nodes, out
