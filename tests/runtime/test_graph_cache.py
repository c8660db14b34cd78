"""Graphs are cached per plan shape, and a policy decision changes the shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.bundles import read_bundle
from pipelines.models.plan import (
    NO_DECISIONS,
    PolicyDecisions,
    lease_snapshot,
    plan_inputs,
    routing_snapshot,
    session_snapshot,
    turn_open_request,
)
from pipelines.plans import TurnPlanResolver
from streams.nodes import default_registry
from streams.runtime.graphs import GraphCache

BUNDLE = read_bundle(
    Path(__file__).resolve().parents[2] / "pipelines/bundles/voice_assistant_bundle_v1.json"
)


def _plan(turn: int, decisions: PolicyDecisions | None = None) -> Any:
    inputs = plan_inputs(
        session=session_snapshot(tenant_id="acme", session_id="s", pinned_bundle_digest=BUNDLE.digest,
                                 next_seq=turn, last_epoch=1),
        turn=turn_open_request(turn_id=f"s-t{turn}", trigger="final_transcript", correlation_id="c",
                               opened_at_us=1),
        lease=lease_snapshot(epoch=1, holder="p", partition=0),
        routing=routing_snapshot(topic_prefix="x", partition=0, processor_id="p"),
        policy_decisions=decisions or NO_DECISIONS,
    )
    return TurnPlanResolver().freeze(BUNDLE, inputs)


def test_turns_of_one_shape_share_a_graph_and_a_decision_gets_its_own() -> None:
    cache = GraphCache(default_registry())
    first = cache.for_plan(_plan(1), text_input=True)
    assert cache.for_plan(_plan(2), text_input=True) is first
    degraded = cache.for_plan(_plan(3, PolicyDecisions(degraded_nodes=("tts",))), text_input=True)
    circuit = cache.for_plan(_plan(4, PolicyDecisions(open_circuits=("rules",))), text_input=True)
    assert degraded is not first and circuit is not first and circuit is not degraded
    assert cache.for_plan(_plan(5), text_input=False) is not first  # audio entry
