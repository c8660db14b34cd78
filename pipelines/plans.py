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
canonical JSON and its hash), from one :class:`PlanInputs` built with the models'
derived per-turn constructors (``plan_inputs``, ``session_snapshot``, ... in
:mod:`pipelines.models.plan`) and without building the plan model; its
``plan_json`` is byte for byte ``canonical_json(resolve(...).model_dump(mode="json"))``.

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
from pydantic import BaseModel, ValidationError

from pipelines.canonical import canonical_json, digest_of
from pipelines.errors import PlanError
from pipelines.models.plan import (
    NO_DECISIONS,
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
_NO_DECISIONS_KEY = NO_DECISIONS.model_dump_json()
_NO_DECISIONS_JSON = NO_DECISIONS.model_dump(mode="json")  # shared, never mutated


@dataclass(frozen=True, slots=True)
class FrozenTurnPlan:
    """What the runtime keeps of a turn's plan: the recorded JSON, its hash and the graph.

    ``plan_json`` is the canonical JSON of the full :class:`ResolvedTurnPlan` (what
    ``TURN_OPEN`` records); ``nodes`` and ``edges`` are validated models shared by
    every plan of the same bundle and policy decisions (``shape``: one object, so
    freezing a plan sets four fields, not seven).
    """

    plan_hash: str
    plan_json: str
    resolved_turn_plan_id: str
    shape: _Graph

    @property
    def bundle_digest(self) -> str:
        return self.shape.bundle_digest

    @property
    def turn_timeout_ms(self) -> int:
        return self.shape.turn_timeout_ms

    @property
    def nodes(self) -> tuple[ResolvedNode, ...]:
        return self.shape.nodes

    @property
    def edges(self) -> tuple[ResolvedEdge, ...]:
        return self.shape.edges


_SORTED = orjson.OPT_SORT_KEYS


@dataclass(frozen=True, slots=True)
class _Graph:
    """One (bundle, policy decisions) pair's part of every plan: canonical JSON pieces, models.

    A plan document's keys sort as abi_version, bundle_digest, bundle_id,
    determinism_context, edges, inputs, nodes, plan_hash, plan_version,
    resolved_turn_plan_id, turn_boundary, turn_timeout_ms; everything but the
    seed, the inputs and the plan id is the same for every turn of the pair, so it
    is serialised once here and the per-turn values are joined in between.
    """

    bundle_digest: str
    turn_timeout_ms: int
    prefix: bytes  # '{"abi_version":...,"determinism_context":{"clock":"recorded","seed":'
    middle: bytes  # '},"edges":[...],"inputs":'
    nodes_part: bytes  # ',"nodes":[...]'
    suffix: bytes  # ',"turn_boundary":...,"turn_timeout_ms":...}'
    nodes: tuple[ResolvedNode, ...]
    edges: tuple[ResolvedEdge, ...]


def _graph_entry(bundle: PipelineBundle, nodes_json: list[Any], edges_json: list[Any]) -> _Graph:
    rs = bundle.resolved_spec
    return _Graph(
        bundle_digest=bundle.digest,
        turn_timeout_ms=rs.turn.timeout_ms.value,
        prefix=b"".join((
            b'{"abi_version":', orjson.dumps(bundle.compat_window.abi_version),
            b',"bundle_digest":', orjson.dumps(bundle.digest),
            b',"bundle_id":', orjson.dumps(bundle.ref),
            # Exactly DeterminismContext(seed=..., clock="recorded"), keys sorted.
            b',"determinism_context":{"clock":"recorded","seed":',
        )),
        middle=b'},"edges":' + canonical_json(edges_json) + b',"inputs":',
        nodes_part=b',"nodes":' + canonical_json(nodes_json),
        suffix=b"".join((
            b',"turn_boundary":', orjson.dumps(rs.turn.boundary.value),
            b',"turn_timeout_ms":', orjson.dumps(rs.turn.timeout_ms.value), b"}",
        )),
        # Validated from the JSON, as model_validate_json of the whole plan would.
        nodes=tuple(ResolvedNode.model_validate_json(orjson.dumps(n)) for n in nodes_json),
        edges=tuple(ResolvedEdge.model_validate_json(orjson.dumps(e)) for e in edges_json),
    )


_AFTER_HASH = b',"plan_version":' + str(PLAN_VERSION).encode() + b',"resolved_turn_plan_id":'


def _document(graph: _Graph, inputs_json: dict[str, Any]) -> tuple[str, bytes, str]:
    """(plan_hash, canonical JSON of the plan, plan id): the one way a plan becomes bytes.

    The hash covers the document without ``plan_hash``; the hash then goes in at
    its sorted place, between ``nodes`` and ``plan_version``.
    """
    session, turn = inputs_json["session"], inputs_json["turn"]
    plan_id = f"{session['tenant_id']}/{session['session_id']}/{turn['turn_id']}"
    seed = _seed(graph.bundle_digest, session["tenant_id"], session["session_id"], turn["turn_id"])
    head = b"".join((graph.prefix, str(seed).encode(), graph.middle,
                     orjson.dumps(inputs_json, option=_SORTED), graph.nodes_part))
    tail = b"".join((_AFTER_HASH, orjson.dumps(plan_id), graph.suffix))
    hasher = hashlib.sha256(head)
    hasher.update(tail)
    digest = "sha256:" + hasher.hexdigest()
    return digest, b"".join((head, b',"plan_hash":"', digest.encode(), b'"', tail)), plan_id


def _plain(model: type[BaseModel]) -> bool:
    return all(f.annotation in (str, int, bool) for f in model.model_fields.values())


# PlanInputs parts whose fields are all str/int/bool: a strict model's __dict__ is then its
# JSON dump already. Derived from the model, so a new snapshot needs no edit here.
_PLAIN_PARTS = tuple(
    name for name, f in PlanInputs.model_fields.items()
    if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) and _plain(f.annotation)
)
_DUMPED_PARTS = tuple(name for name in PlanInputs.model_fields if name not in _PLAIN_PARTS)


def _inputs_json(inputs: PlanInputs) -> dict[str, Any]:
    """Exactly ``inputs.model_dump(mode="json")`` (tests/artifacts/test_plan_freeze.py)."""
    parts = inputs.__dict__
    out = {name: parts[name].__dict__ for name in _PLAIN_PARTS}
    for name in _DUMPED_PARTS:
        value = parts[name]
        out[name] = _NO_DECISIONS_JSON if value is NO_DECISIONS else value.model_dump(mode="json")
    return out


def _seed(digest: str, tenant_id: str, session_id: str, turn_id: str) -> int:
    key = "\x00".join((digest, tenant_id, session_id, turn_id))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _check_authority(bundle: PipelineBundle, inputs: PlanInputs) -> None:
    s, lease, routing = inputs.session, inputs.lease, inputs.routing
    if s.pinned_bundle_digest != bundle.digest:
        raise PlanError(
            f"session {s.session_id} is pinned to {s.pinned_bundle_digest}, not {bundle.ref} "
            f"({bundle.digest}); sessions never change bundle mid-life"
        )
    if lease.epoch < s.last_epoch:
        raise PlanError(
            f"stale lease: epoch {lease.epoch} held by {lease.holder} is older than the session's "
            f"last epoch {s.last_epoch} (expected >= {s.last_epoch})"
        )
    if routing.partition != lease.partition:
        raise PlanError(
            f"routing partition {routing.partition} differs from the lease's partition "
            f"{lease.partition}"
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
            policy_decisions=policy_decisions or NO_DECISIONS,
        )
        return self._resolve(bundle, inputs)

    def freeze(self, bundle: PipelineBundle, inputs: PlanInputs) -> FrozenTurnPlan:
        """:meth:`resolve` for the runtime's hot path: the same plan, recorded form only.

        Gives the plan's hash and canonical JSON (byte for byte those of
        ``resolve(...)`` with the same snapshots) without building the plan model.
        ``inputs`` is built per turn with the models' derived constructors
        (:func:`pipelines.models.plan.plan_inputs` and friends), which check what
        the models check; raises what ``resolve`` raises.
        """
        _check_authority(bundle, inputs)
        decisions = inputs.policy_decisions
        key = _NO_DECISIONS_KEY if decisions is NO_DECISIONS else decisions.model_dump_json()
        graph = self._graph_for(bundle, decisions, key)
        digest, plan_json, plan_id = _document(graph, _inputs_json(inputs))
        return FrozenTurnPlan(
            plan_hash=digest,
            plan_json=plan_json.decode(),
            resolved_turn_plan_id=plan_id,
            shape=graph,
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
        return self._document(bundle, plan.inputs)[0]

    def _resolve(self, bundle: PipelineBundle, inputs: PlanInputs) -> ResolvedTurnPlan:
        return ResolvedTurnPlan.model_validate_json(self._document(bundle, inputs)[1])

    def _document(self, bundle: PipelineBundle, inputs: PlanInputs) -> tuple[str, bytes, str]:
        _check_authority(bundle, inputs)
        decisions = inputs.policy_decisions
        graph = self._graph_for(bundle, decisions, decisions.model_dump_json())
        return _document(graph, inputs.model_dump(mode="json"))

    def _graph_for(self, bundle: PipelineBundle, decisions: PolicyDecisions, key: str) -> _Graph:
        """The cached graph of ``bundle`` under ``decisions`` (``key`` is their JSON)."""
        cache_key = (bundle.digest, key)
        graph = self._graphs.get(cache_key)
        if graph is None:
            graph = _graph_entry(bundle, *self._graph(bundle, decisions))
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
