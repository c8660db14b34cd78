"""TurnPlanResolver.freeze: the runtime's fast path records exactly the plan ``resolve`` gives.

``freeze`` builds the plan's canonical JSON from one ``PlanInputs`` made with the
models' derived per-turn constructors (no pydantic validation, no plan model per
turn). Every byte of ``plan_json`` and the ``plan_hash`` must be those of
``canonical_json(resolve(...).model_dump(mode="json"))``, for any inputs; inputs the
snapshot models reject must raise what the slow path raises.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.bundles import read_bundle
from pipelines.canonical import canonical_json
from pipelines.errors import PlanError
from pipelines.models import (
    LeaseSnapshot,
    PipelineBundle,
    PlanInputs,
    PolicyDecisions,
    ResolvedTurnPlan,
    RoutingSnapshot,
    SessionSnapshot,
    TurnOpenRequest,
)
from pipelines.models import plan as plan_models
from pipelines.plans import FrozenTurnPlan, TurnPlanResolver, plan_from_json
from pipelines.shipped import PIPELINES_DIR
from streams.abi import events as ev
from streams.runtime.planning import TurnPlanner
from streams.runtime.sessions import SessionState

BUNDLES: tuple[PipelineBundle, ...] = tuple(
    read_bundle(p) for p in sorted((PIPELINES_DIR / "bundles").glob("*.json"))
)
FAST = TurnPlanResolver()  # shared across examples: its graph cache sees many decision sets
OTHER_DIGEST = "sha256:" + "ab" * 32

_names = st.text(min_size=1, max_size=16)  # hypothesis text never contains lone surrogates
_counts = st.integers(0, 2**63 - 1) | st.integers(0, 5)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def _decisions(draw: st.DrawFn, bundle: PipelineBundle, *, unknown: bool) -> PolicyDecisions | None:
    if draw(st.booleans()):
        return None
    rs = bundle.resolved_spec
    nodes = sorted(n.id for n in rs.nodes)
    inserts = sorted(i.id for i in rs.inserts)
    providers = sorted({p for n in rs.nodes for p in n.providers.value})
    extra = ["no-such-thing"] if unknown else []

    def some(names: list[str]) -> tuple[str, ...]:
        return tuple(draw(st.lists(st.sampled_from(names), max_size=3))) if names else ()

    return PolicyDecisions(
        open_circuits=some(providers + extra),
        degraded_nodes=some(nodes + extra),
        enabled_inserts=some(inserts + extra),
        attributes=draw(st.dictionaries(st.text(max_size=6), _json, max_size=3)),
    )


@st.composite
def _valid(draw: st.DrawFn) -> tuple[PipelineBundle, dict[str, Any]]:
    """Inputs every snapshot model accepts, authority checks pass, decisions name known things."""
    bundle = draw(st.sampled_from(BUNDLES))
    last_epoch = draw(_counts)
    partition = draw(_counts)
    return bundle, {
        "tenant_id": draw(_names),
        "session_id": draw(_names),
        "pinned_bundle_digest": bundle.digest,
        "next_seq": draw(_counts),
        "last_epoch": last_epoch,
        "open_turns": draw(_counts),
        "turn_id": draw(_names),
        "trigger": draw(st.sampled_from(["final_transcript", "end_of_utterance", "text"]) | _names),
        "correlation_id": draw(_names),
        "opened_at_us": draw(_counts),
        "lease_epoch": last_epoch + draw(st.integers(0, 3)),
        "lease_holder": draw(_names),
        "lease_partition": partition,
        "topic_prefix": draw(_names),
        "routing_partition": partition,
        "processor_id": draw(_names),
        "region": draw(st.just("local") | st.text(max_size=8)),
        "policy_decisions": draw(_decisions(bundle, unknown=False)),
    }


_NAME_FIELDS = (
    "tenant_id",
    "session_id",
    "turn_id",
    "trigger",
    "correlation_id",
    "lease_holder",
    "topic_prefix",
    "processor_id",
)
_COUNT_FIELDS = (
    "next_seq",
    "last_epoch",
    "open_turns",
    "opened_at_us",
    "lease_epoch",
    "lease_partition",
    "routing_partition",
)
_bad_name: st.SearchStrategy[Any] = st.sampled_from(["", 0, None, b"x"])
_bad_count: st.SearchStrategy[Any] = st.sampled_from([-1, True, False, 1.0, "3", None])


@st.composite
def _anything(draw: st.DrawFn) -> tuple[PipelineBundle, dict[str, Any]]:
    """Valid inputs with a few faults: bad values, stale lease, wrong partition or bundle, unknown names."""
    bundle, values = draw(_valid())
    for _ in range(draw(st.integers(0, 3))):
        fault = draw(
            st.sampled_from(
                ["name", "count", "region", "pinned", "stale", "partition", "decisions"]
            )
        )
        if fault == "name":
            values[draw(st.sampled_from(_NAME_FIELDS))] = draw(_bad_name)
        elif fault == "count":
            values[draw(st.sampled_from(_COUNT_FIELDS))] = draw(_bad_count)
        elif fault == "region":
            values["region"] = draw(st.sampled_from([0, None]))
        elif fault == "pinned":
            others = [b.digest for b in BUNDLES if b is not bundle]
            values["pinned_bundle_digest"] = draw(
                st.sampled_from([*others, OTHER_DIGEST, "sha256:nope"])
            )
        elif fault == "stale" and isinstance(values["lease_epoch"], int):
            values["last_epoch"] = values["lease_epoch"] + draw(st.integers(1, 3))
        elif fault == "partition" and isinstance(values["lease_partition"], int):
            values["routing_partition"] = values["lease_partition"] + draw(st.integers(1, 3))
        elif fault == "decisions":
            values["policy_decisions"] = draw(_decisions(bundle, unknown=True))
    return bundle, values


def _slow(bundle: PipelineBundle, v: dict[str, Any]) -> ResolvedTurnPlan:
    """The reference: snapshot models in the order the planner used to build them, then resolve."""
    session = SessionSnapshot(
        tenant_id=v["tenant_id"],
        session_id=v["session_id"],
        pinned_bundle_digest=v["pinned_bundle_digest"],
        next_seq=v["next_seq"],
        last_epoch=v["last_epoch"],
        open_turns=v["open_turns"],
    )
    turn = TurnOpenRequest(
        turn_id=v["turn_id"],
        trigger=v["trigger"],
        correlation_id=v["correlation_id"],
        opened_at_us=v["opened_at_us"],
    )
    lease = LeaseSnapshot(
        epoch=v["lease_epoch"], holder=v["lease_holder"], partition=v["lease_partition"]
    )
    routing = RoutingSnapshot(
        topic_prefix=v["topic_prefix"],
        partition=v["routing_partition"],
        processor_id=v["processor_id"],
        region=v["region"],
    )
    return TurnPlanResolver().resolve(
        bundle=bundle,
        session=session,
        turn=turn,
        lease=lease,
        routing=routing,
        policy_decisions=v["policy_decisions"],
    )


def _freeze(resolver: TurnPlanResolver, bundle: PipelineBundle, v: dict[str, Any]) -> FrozenTurnPlan:
    """The runtime's way: the derived constructors, in the order ``_slow`` builds the models."""
    optional = {k: v[k] for k in ("open_turns",) if k in v}
    session = plan_models.session_snapshot(
        tenant_id=v["tenant_id"],
        session_id=v["session_id"],
        pinned_bundle_digest=v["pinned_bundle_digest"],
        next_seq=v["next_seq"],
        last_epoch=v["last_epoch"],
        **optional,
    )
    turn = plan_models.turn_open_request(
        turn_id=v["turn_id"],
        trigger=v["trigger"],
        correlation_id=v["correlation_id"],
        opened_at_us=v["opened_at_us"],
    )
    lease = plan_models.lease_snapshot(
        epoch=v["lease_epoch"], holder=v["lease_holder"], partition=v["lease_partition"]
    )
    routing = plan_models.routing_snapshot(
        topic_prefix=v["topic_prefix"],
        partition=v["routing_partition"],
        processor_id=v["processor_id"],
        **({"region": v["region"]} if "region" in v else {}),
    )
    inputs = plan_models.plan_inputs(
        session=session,
        turn=turn,
        lease=lease,
        routing=routing,
        policy_decisions=v.get("policy_decisions") or plan_models.NO_DECISIONS,
    )
    return resolver.freeze(bundle, inputs)


def _outcome(call: Any) -> tuple[str, str] | Any:
    try:
        return call()
    except Exception as exc:  # the very exception is what is compared
        return type(exc).__name__, str(exc)


def _assert_same(frozen: FrozenTurnPlan, slow: ResolvedTurnPlan, bundle: PipelineBundle) -> None:
    assert frozen.plan_json == canonical_json(slow.model_dump(mode="json")).decode()
    assert frozen.plan_hash == slow.plan_hash
    assert frozen.resolved_turn_plan_id == slow.resolved_turn_plan_id
    assert frozen.bundle_digest == slow.bundle_digest == bundle.digest
    assert frozen.turn_timeout_ms == slow.turn_timeout_ms
    assert frozen.nodes == slow.nodes and frozen.edges == slow.edges
    recorded = ResolvedTurnPlan.model_validate_json(frozen.plan_json)
    assert recorded == slow
    assert TurnPlanResolver().rederive_hash(recorded, bundle) == frozen.plan_hash
    TurnPlanResolver().verify(plan_from_json(frozen.plan_json), bundle)


@settings(max_examples=300, deadline=None)
@given(case=_valid())
def test_freeze_records_exactly_the_resolved_plan(
    case: tuple[PipelineBundle, dict[str, Any]],
) -> None:
    bundle, values = case
    frozen = _freeze(FAST, bundle, values)
    slow = _slow(bundle, values)
    _assert_same(frozen, slow, bundle)
    # The inputs dict freeze builds by hand is the snapshot models' JSON dump.
    assert orjson.loads(frozen.plan_json)["inputs"] == PlanInputs(
        session=slow.inputs.session,
        turn=slow.inputs.turn,
        lease=slow.inputs.lease,
        routing=slow.inputs.routing,
        policy_decisions=values["policy_decisions"] or PolicyDecisions(),
    ).model_dump(mode="json")


@settings(max_examples=400, deadline=None)
@given(case=_anything())
def test_freeze_fails_exactly_as_resolve_does(case: tuple[PipelineBundle, dict[str, Any]]) -> None:
    bundle, values = case
    fast = _outcome(lambda: _freeze(FAST, bundle, values))
    slow = _outcome(lambda: _slow(bundle, values))
    if isinstance(fast, FrozenTurnPlan):
        assert isinstance(slow, ResolvedTurnPlan), slow
        _assert_same(fast, slow, bundle)
    else:
        assert fast == slow


def _values(bundle: PipelineBundle, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "tenant_id": "acme",
        "session_id": "s-1",
        "pinned_bundle_digest": bundle.digest,
        "next_seq": 7,
        "last_epoch": 2,
        "turn_id": "s-1-t1",
        "trigger": "final_transcript",
        "correlation_id": "c-1",
        "opened_at_us": 1_700_000_000_000_000,
        "lease_epoch": 3,
        "lease_holder": "proc-a",
        "lease_partition": 0,
        "topic_prefix": "demo.voice",
        "routing_partition": 0,
        "processor_id": "proc-a",
    }
    return {**values, **changes}


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"pinned_bundle_digest": OTHER_DIGEST}, "is pinned to sha256:abab"),
        ({"lease_epoch": 1}, "stale lease: epoch 1 held by proc-a"),
        ({"routing_partition": 1}, "routing partition 1 differs from the lease's partition 0"),
        ({"lease_partition": 2}, "routing partition 0 differs from the lease's partition 2"),
    ],
)
def test_authority_checks_hold_on_the_fast_path(
    bundle_v1: PipelineBundle, changes: dict[str, Any], match: str
) -> None:
    values = _values(bundle_v1, **changes)
    with pytest.raises(PlanError, match=match) as fast:
        _freeze(TurnPlanResolver(), bundle_v1, values)
    with pytest.raises(PlanError) as slow:
        _slow(bundle_v1, {**values, "open_turns": 0, "region": "local", "policy_decisions": None})
    assert str(fast.value) == str(slow.value)


def test_pinned_to_the_other_shipped_bundle_is_refused(
    bundle_v1: PipelineBundle, bundle_v1_1: PipelineBundle
) -> None:
    with pytest.raises(PlanError, match="sessions never change bundle mid-life"):
        _freeze(
            TurnPlanResolver(), bundle_v1_1,
            _values(bundle_v1_1, pinned_bundle_digest=bundle_v1.digest),
        )


def test_graph_models_are_validated_once_per_bundle_and_decisions(
    bundle_v1_1: PipelineBundle,
) -> None:
    resolver = TurnPlanResolver()
    a = _freeze(resolver, bundle_v1_1, _values(bundle_v1_1))
    b = _freeze(resolver, bundle_v1_1, _values(bundle_v1_1, turn_id="s-1-t2"))
    assert a.plan_hash != b.plan_hash
    assert a.nodes is b.nodes and a.edges is b.edges
    sentiment = PolicyDecisions(enabled_inserts=("sentiment",))
    c = _freeze(resolver, bundle_v1_1, _values(bundle_v1_1, policy_decisions=sentiment))
    assert c.nodes is not a.nodes and "sentiment" in [n.id for n in c.nodes]
    # resolve shares the cache: same graph, same models
    d = resolver.resolve(
        bundle=bundle_v1_1,
        session=SessionSnapshot(
            tenant_id="acme",
            session_id="s-1",
            pinned_bundle_digest=bundle_v1_1.digest,
            next_seq=7,
            last_epoch=2,
        ),
        turn=TurnOpenRequest(
            turn_id="s-1-t1",
            trigger="final_transcript",
            correlation_id="c-1",
            opened_at_us=1_700_000_000_000_000,
        ),
        lease=LeaseSnapshot(epoch=3, holder="proc-a", partition=0),
        routing=RoutingSnapshot(topic_prefix="demo.voice", partition=0, processor_id="proc-a"),
    )
    assert d.plan_hash == a.plan_hash and d.nodes == a.nodes


_runtime = st.fixed_dictionaries(
    {
        "session_id": _names,
        "tenant_id": _names,
        "next_seq": st.integers(0, 2**40),
        "epoch": st.integers(0, 2**40),
        "bump": st.integers(0, 3),
        "partition": st.integers(0, 64),
        "turns_done": st.integers(0, 1000),
        "text_input": st.booleans(),
        "offset_us": st.integers(0, 10**15),
    }
)


@settings(max_examples=100, deadline=None)
@given(case=_runtime)
def test_planner_freezes_what_it_used_to_resolve(case: dict[str, Any]) -> None:
    """TurnPlanner.plan (runtime state → freeze) gives the plan of the snapshots it used to build."""
    session_id, tenant_id, epoch = case["session_id"], case["tenant_id"], case["epoch"]
    next_seq, partition, turns_done = case["next_seq"], case["partition"], case["turns_done"]
    bump, text_input, offset_us = case["bump"], case["text_input"], case["offset_us"]
    bundle = BUNDLES[0]
    planner = TurnPlanner(bundle=bundle, processor_id="proc-7", prefix="demo.voice")
    session = SessionState(
        session_id=session_id,
        tenant_id=tenant_id,
        partition=partition,
        bundle_id=bundle.ref,
        next_seq=next_seq,
        epoch=epoch,
    )
    session.turns_done = turns_done
    ts = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=offset_us)
    event = ev.Envelope.new(
        ev.Transcript(kind=ev.TranscriptKind.FINAL, text="hi"),
        tenant_id=tenant_id,
        session_id=session_id,
        seq=0,
        ts=ts,
    )
    trigger = "final_transcript" if text_input else "end_of_utterance"
    turn_id = f"{session_id}-t{turns_done + 1}"
    frozen = planner.plan(session, event, turn_id=turn_id, trigger=trigger, epoch=epoch + bump)
    slow = TurnPlanResolver().resolve(
        bundle=bundle,
        session=SessionSnapshot(
            tenant_id=tenant_id,
            session_id=session_id,
            pinned_bundle_digest=bundle.digest,
            next_seq=next_seq,
            last_epoch=epoch,
            open_turns=0,
        ),
        turn=TurnOpenRequest(
            turn_id=turn_id,
            trigger=trigger,
            correlation_id=event.correlation.correlation_id,
            opened_at_us=int(ts.timestamp() * 1_000_000),
        ),
        lease=LeaseSnapshot(epoch=epoch + bump, holder="proc-7", partition=partition),
        routing=RoutingSnapshot(
            topic_prefix="demo.voice", partition=partition, processor_id="proc-7"
        ),
    )
    _assert_same(frozen, slow, bundle)


def test_warmup_plan_is_a_plan_of_the_bundle() -> None:
    for bundle in BUNDLES:
        warm = TurnPlanner(bundle=bundle, processor_id="p", prefix="x").warmup_plan()
        plan = plan_from_json(warm.plan_json)
        assert plan.plan_hash == warm.plan_hash and plan.inputs.session.tenant_id == "__warmup__"
        assert warm.nodes == plan.nodes and warm.turn_timeout_ms == plan.turn_timeout_ms


def test_a_str_enum_id_gives_the_plan_resolve_gives() -> None:
    import enum

    class Tenant(str, enum.Enum):  # noqa: UP042 - the mixin formats as "Tenant.ACME"
        ACME = "acme"

    bundle = BUNDLES[0]
    values = _values(bundle, tenant_id=Tenant.ACME)
    fast = _freeze(TurnPlanResolver(), bundle, values)
    slow = _slow(bundle, {**values, "open_turns": 0, "region": "local", "policy_decisions": None})
    assert fast.resolved_turn_plan_id == slow.resolved_turn_plan_id
    _assert_same(fast, slow, bundle)
