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

The runtime's hot path is :meth:`TurnPlanResolver.freeze`: the same plan, but
only what the runtime needs of it (a :class:`FrozenTurnPlan` with the recorded
canonical JSON and its hash) and without building the pydantic models per turn;
its ``plan_json`` is byte for byte ``canonical_json(resolve(...).model_dump(mode="json"))``.

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
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from pipelines.canonical import canonical_json, digest_of
from pipelines.errors import PlanError
from pipelines.models.plan import (
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
from pipelines.models.spec import DegradeAction

__all__ = ["PLAN_VERSION", "FrozenTurnPlan", "TurnPlanResolver", "plan_from_json", "plan_hash"]

PLAN_VERSION = 1
_DECISION = "decision"
_NO_DECISIONS = PolicyDecisions()
_NO_DECISIONS_KEY = _NO_DECISIONS.model_dump_json()
_NO_DECISIONS_JSON = _NO_DECISIONS.model_dump(mode="json")  # shared, never mutated


@dataclass(frozen=True, slots=True)
class FrozenTurnPlan:
    """What the runtime keeps of a turn's plan: the recorded JSON, its hash and the graph.

    ``plan_json`` is the canonical JSON of the full :class:`ResolvedTurnPlan` (what
    ``TURN_OPEN`` records); ``nodes`` and ``edges`` are validated models shared by
    every plan of the same bundle and policy decisions.
    """

    plan_hash: str
    plan_json: str
    resolved_turn_plan_id: str
    bundle_digest: str
    turn_timeout_ms: int
    nodes: tuple[ResolvedNode, ...]
    edges: tuple[ResolvedEdge, ...]


@dataclass(frozen=True, slots=True)
class _Graph:
    """One (bundle, policy decisions) pair's part of every plan: JSON, canonical JSON, models."""

    nodes_json: list[Any]
    edges_json: list[Any]
    # Pre-serialised canonical JSON, spliced into each plan document as is.
    nodes_canonical: orjson.Fragment
    edges_canonical: orjson.Fragment
    nodes: tuple[ResolvedNode, ...]
    edges: tuple[ResolvedEdge, ...]


def _graph_entry(nodes_json: list[Any], edges_json: list[Any]) -> _Graph:
    return _Graph(
        nodes_json=nodes_json,
        edges_json=edges_json,
        nodes_canonical=orjson.Fragment(canonical_json(nodes_json)),
        edges_canonical=orjson.Fragment(canonical_json(edges_json)),
        # Validated from the JSON, as model_validate_json of the whole plan would.
        nodes=tuple(ResolvedNode.model_validate_json(orjson.dumps(n)) for n in nodes_json),
        edges=tuple(ResolvedEdge.model_validate_json(orjson.dumps(e)) for e in edges_json),
    )


def _is_name(value: object) -> bool:
    return type(value) is str and value != ""


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def _plan_body(
    bundle: PipelineBundle, inputs_json: dict[str, Any], nodes: Any, edges: Any
) -> dict[str, Any]:
    """The plan document with its hash: ``inputs_json`` is ``PlanInputs`` as JSON; ``nodes``
    and ``edges`` are the graph's JSON values or their pre-serialised fragments."""
    rs = bundle.resolved_spec
    session, turn = inputs_json["session"], inputs_json["turn"]
    body: dict[str, Any] = {
        "resolved_turn_plan_id": f"{session['tenant_id']}/{session['session_id']}/{turn['turn_id']}",
        "plan_version": PLAN_VERSION,
        "bundle_id": bundle.ref,
        "bundle_digest": bundle.digest,
        "abi_version": bundle.compat_window.abi_version,
        "inputs": inputs_json,
        "nodes": nodes,
        "edges": edges,
        "turn_boundary": rs.turn.boundary.value,
        "turn_timeout_ms": rs.turn.timeout_ms.value,
        # Exactly DeterminismContext(seed=..., clock="recorded").model_dump().
        "determinism_context": {
            "seed": _seed(
                bundle.digest, session["tenant_id"], session["session_id"], turn["turn_id"]
            ),
            "clock": "recorded",
        },
    }
    body["plan_hash"] = digest_of(body)
    return body


def _seed(digest: str, tenant_id: str, session_id: str, turn_id: str) -> int:
    key = "\x00".join((digest, tenant_id, session_id, turn_id))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _check_authority(
    bundle: PipelineBundle,
    *,
    session_id: str,
    pinned_bundle_digest: str,
    last_epoch: int,
    lease_epoch: int,
    lease_holder: str,
    lease_partition: int,
    routing_partition: int,
) -> None:
    if pinned_bundle_digest != bundle.digest:
        raise PlanError(
            f"session {session_id} is pinned to {pinned_bundle_digest}, not {bundle.ref} "
            f"({bundle.digest}); sessions never change bundle mid-life"
        )
    if lease_epoch < last_epoch:
        raise PlanError(
            f"stale lease: epoch {lease_epoch} held by {lease_holder} is older than the session's "
            f"last epoch {last_epoch} (expected >= {last_epoch})"
        )
    if routing_partition != lease_partition:
        raise PlanError(
            f"routing partition {routing_partition} differs from the lease's partition "
            f"{lease_partition}"
        )


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
        raise PlanError(
            f"recorded plan is malformed: {exc.error_count()} problems, first: "
            f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        ) from None
    actual = plan_hash(plan)
    if actual != plan.plan_hash:
        raise PlanError(
            f"plan {plan.resolved_turn_plan_id}: recorded plan_hash {plan.plan_hash} but content "
            f"hashes to {actual} (expected an untouched plan)"
        )
    return plan


def _insert_node(ins: ResolvedInsert) -> ResolvedNode:
    return ResolvedNode(
        id=ins.node.id,
        type=ins.node.type,
        module=None,
        input="",
        output="",  # set by the splice
        package=ins.package,
        config=Sourced[dict[str, Any]](value=dict(ins.node.config), source=ins.source),
        timeout_ms=Sourced[int](value=ins.timeout_ms, source=ins.source),
        retries=Sourced[int](value=0, source=ins.source),
        providers=Sourced[tuple[str, ...]](value=tuple(ins.providers), source=ins.source),
        degrade=Sourced[DegradeAction](value="skip", source=ins.source),
        degrade_reply=Sourced[str | None](value=None, source=ins.source),
    )


class TurnPlanResolver:
    """One instance may serve every turn of every session.

    Its only state is a bounded cache of each (bundle, policy decisions) pair's
    plan graph (as JSON, as canonical JSON and as validated models): that part
    does not change between turns, and building it is most of the cost of a plan.
    """

    def __init__(self) -> None:
        self._graphs: dict[tuple[str, str], _Graph] = {}

    def resolve(
        self,
        *,
        bundle: PipelineBundle,
        session: SessionSnapshot,
        turn: TurnOpenRequest,
        lease: LeaseSnapshot,
        routing: RoutingSnapshot,
        policy_decisions: PolicyDecisions | None = None,
    ) -> ResolvedTurnPlan:
        inputs = PlanInputs(
            session=session,
            turn=turn,
            lease=lease,
            routing=routing,
            policy_decisions=policy_decisions or PolicyDecisions(),
        )
        return self._resolve(bundle, inputs)

    def freeze(
        self,
        *,
        bundle: PipelineBundle,
        tenant_id: str,
        session_id: str,
        pinned_bundle_digest: str,
        next_seq: int,
        last_epoch: int,
        turn_id: str,
        trigger: str,
        correlation_id: str,
        opened_at_us: int,
        lease_epoch: int,
        lease_holder: str,
        lease_partition: int,
        topic_prefix: str,
        routing_partition: int,
        processor_id: str,
        region: str = "local",
        open_turns: int = 0,
        policy_decisions: PolicyDecisions | None = None,
    ) -> FrozenTurnPlan:
        """:meth:`resolve` for the runtime's hot path, from plain values.

        Gives the plan's hash and canonical JSON (byte for byte those of
        ``resolve(...)`` with the same snapshots) without building the snapshot
        models or the plan model. Raises what ``resolve`` and the snapshot models
        raise: invalid values fall back to the models, so their ValidationError is
        the one the slow path gives.
        """
        if (
            pinned_bundle_digest == bundle.digest
            and _is_name(tenant_id)
            and _is_name(session_id)
            and _is_count(next_seq)
            and _is_count(last_epoch)
            and _is_count(open_turns)
            and _is_name(turn_id)
            and _is_name(trigger)
            and _is_name(correlation_id)
            and _is_count(opened_at_us)
            and _is_count(lease_epoch)
            and _is_name(lease_holder)
            and _is_count(lease_partition)
            and _is_name(topic_prefix)
            and _is_count(routing_partition)
            and _is_name(processor_id)
            and type(region) is str
        ):
            # Exactly PlanInputs(...).model_dump(mode="json") (tests/artifacts/test_plan_freeze.py).
            inputs_json: dict[str, Any] = {
                "session": {
                    "tenant_id": tenant_id,
                    "session_id": session_id,
                    "pinned_bundle_digest": pinned_bundle_digest,
                    "next_seq": next_seq,
                    "last_epoch": last_epoch,
                    "open_turns": open_turns,
                },
                "turn": {
                    "turn_id": turn_id,
                    "trigger": trigger,
                    "correlation_id": correlation_id,
                    "opened_at_us": opened_at_us,
                },
                "lease": {
                    "epoch": lease_epoch,
                    "holder": lease_holder,
                    "partition": lease_partition,
                },
                "routing": {
                    "topic_prefix": topic_prefix,
                    "partition": routing_partition,
                    "processor_id": processor_id,
                    "region": region,
                },
                "policy_decisions": _NO_DECISIONS_JSON
                if policy_decisions is None
                else policy_decisions.model_dump(mode="json"),
            }
            _check_authority(
                bundle,
                session_id=session_id,
                pinned_bundle_digest=pinned_bundle_digest,
                last_epoch=last_epoch,
                lease_epoch=lease_epoch,
                lease_holder=lease_holder,
                lease_partition=lease_partition,
                routing_partition=routing_partition,
            )
            decisions = _NO_DECISIONS if policy_decisions is None else policy_decisions
            key = _NO_DECISIONS_KEY if policy_decisions is None else decisions.model_dump_json()
            graph = self._graph_for(bundle, decisions, key)
            body = _plan_body(bundle, inputs_json, graph.nodes_canonical, graph.edges_canonical)
        else:  # the models raise the error the slow path gives (or accept what we did not)
            inputs = PlanInputs(
                session=SessionSnapshot(
                    tenant_id=tenant_id,
                    session_id=session_id,
                    pinned_bundle_digest=pinned_bundle_digest,
                    next_seq=next_seq,
                    last_epoch=last_epoch,
                    open_turns=open_turns,
                ),
                turn=TurnOpenRequest(
                    turn_id=turn_id,
                    trigger=trigger,
                    correlation_id=correlation_id,
                    opened_at_us=opened_at_us,
                ),
                lease=LeaseSnapshot(
                    epoch=lease_epoch, holder=lease_holder, partition=lease_partition
                ),
                routing=RoutingSnapshot(
                    topic_prefix=topic_prefix,
                    partition=routing_partition,
                    processor_id=processor_id,
                    region=region,
                ),
                policy_decisions=policy_decisions or _NO_DECISIONS,
            )
            body = self._body(bundle, inputs)
            decisions = inputs.policy_decisions
            graph = self._graph_for(bundle, decisions, decisions.model_dump_json())
        rs = bundle.resolved_spec
        return FrozenTurnPlan(
            plan_hash=body["plan_hash"],
            plan_json=canonical_json(body).decode(),
            resolved_turn_plan_id=body["resolved_turn_plan_id"],
            bundle_digest=bundle.digest,
            turn_timeout_ms=rs.turn.timeout_ms.value,
            nodes=graph.nodes,
            edges=graph.edges,
        )

    def rederive(self, plan: ResolvedTurnPlan, bundle: PipelineBundle) -> ResolvedTurnPlan:
        """Re-run resolution from the inputs recorded in ``plan``."""
        return self._resolve(bundle, plan.inputs)

    def verify(self, plan: ResolvedTurnPlan, bundle: PipelineBundle) -> None:
        """Raise PlanError unless re-deriving ``plan`` from ``bundle`` gives the same hash."""
        again = self.rederive(plan, bundle)
        if again.plan_hash != plan.plan_hash:
            raise PlanError(
                f"plan {plan.resolved_turn_plan_id}: recorded {plan.plan_hash}, re-derived from "
                f"{bundle.ref} ({bundle.digest}) gives {again.plan_hash}"
            )

    # -- internals -------------------------------------------------------------------------
    def rederive_hash(self, plan: ResolvedTurnPlan, bundle: PipelineBundle) -> str:
        """The plan_hash re-derivation gives, without building the plan model (replay's hot path)."""
        return self._body(bundle, plan.inputs)["plan_hash"]  # type: ignore[no-any-return]

    def _resolve(self, bundle: PipelineBundle, inputs: PlanInputs) -> ResolvedTurnPlan:
        return ResolvedTurnPlan.model_validate_json(orjson.dumps(self._body(bundle, inputs)))

    def _body(self, bundle: PipelineBundle, inputs: PlanInputs) -> dict[str, Any]:
        self._check_authority(bundle, inputs)
        decisions = inputs.policy_decisions
        graph = self._graph_for(bundle, decisions, decisions.model_dump_json())
        return _plan_body(
            bundle, inputs.model_dump(mode="json"), graph.nodes_json, graph.edges_json
        )

    def _graph_for(self, bundle: PipelineBundle, decisions: PolicyDecisions, key: str) -> _Graph:
        """The cached graph of ``bundle`` under ``decisions`` (``key`` is their JSON)."""
        cache_key = (bundle.digest, key)
        graph = self._graphs.get(cache_key)
        if graph is None:
            graph = _graph_entry(*self._graph(bundle, decisions))
            if len(self._graphs) >= 64:  # bounded: a processor sees few bundles x decision sets
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[cache_key] = graph
        return graph

    def _graph(
        self, bundle: PipelineBundle, decisions: PolicyDecisions
    ) -> tuple[list[Any], list[Any]]:
        """The plan's nodes and edges as JSON values: a function of the bundle and the decisions only."""
        rs = bundle.resolved_spec
        nodes = {n.id: n for n in rs.nodes}
        inserts = {i.id: i for i in rs.inserts}
        providers = {p for n in rs.nodes for p in n.providers.value}
        for what, names, known in (
            ("insert", decisions.enabled_inserts, inserts),
            ("provider", decisions.open_circuits, providers),
            ("node", decisions.degraded_nodes, nodes),
        ):
            unknown = sorted(set(names) - set(known))
            if unknown:
                raise PlanError(
                    f"policy decisions name unknown {what}s {unknown} (expected some of "
                    f"{sorted(known)} from {bundle.ref})"
                )
        open_circuits = set(decisions.open_circuits)
        degraded = set(decisions.degraded_nodes)
        plan_nodes: list[ResolvedNode] = []
        for base in rs.nodes:
            node = base
            live = tuple(p for p in node.providers.value if p not in open_circuits)
            if live != tuple(node.providers.value):
                node = node.model_copy(
                    update={"providers": Sourced[tuple[str, ...]](value=live, source=_DECISION)}
                )
            if not live or node.id in degraded:
                node = node.model_copy(
                    update={"degrade": Sourced[DegradeAction](value=node.degrade.value, source=_DECISION)}
                )
            plan_nodes.append(node)
        edges = list(rs.edges)
        enabled = {i.id for i in rs.inserts if i.default_enabled} | set(decisions.enabled_inserts)
        for ins in sorted((inserts[i] for i in enabled), key=lambda i: i.id):
            plan_nodes, edges = self._splice(ins, plan_nodes, edges, nodes)
        return [n.model_dump(mode="json") for n in plan_nodes], [
            e.model_dump(mode="json") for e in edges
        ]

    @staticmethod
    def _check_authority(bundle: PipelineBundle, inputs: PlanInputs) -> None:
        s, lease = inputs.session, inputs.lease
        _check_authority(
            bundle,
            session_id=s.session_id,
            pinned_bundle_digest=s.pinned_bundle_digest,
            last_epoch=s.last_epoch,
            lease_epoch=lease.epoch,
            lease_holder=lease.holder,
            lease_partition=lease.partition,
            routing_partition=inputs.routing.partition,
        )

    @staticmethod
    def _splice(
        ins: ResolvedInsert,
        nodes: list[ResolvedNode],
        edges: list[ResolvedEdge],
        base: dict[str, ResolvedNode],
    ) -> tuple[list[ResolvedNode], list[ResolvedEdge]]:
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
