"""TurnPlanResolver: frozen, deterministic plans that replay can re-derive."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.errors import PlanError
from pipelines.models import (
    LeaseSnapshot,
    PipelineBundle,
    PolicyDecisions,
    RoutingSnapshot,
    SessionSnapshot,
    TurnOpenRequest,
)
from pipelines.plans import TurnPlanResolver, plan_from_json, plan_hash
from pipelines.shipped import PIPELINES_DIR

_text = st.text(min_size=1, max_size=20)  # hypothesis text never contains lone surrogates


def _inputs(bundle: PipelineBundle, *, tenant: str = "acme", session: str = "s-1", turn: str = "t-1",
            epoch: int = 3, last_epoch: int = 2, partition: int = 0, seq: int = 7, at: int = 1_700_000_000_000_000,
            decisions: PolicyDecisions | None = None) -> dict[str, object]:
    return {
        "bundle": bundle,
        "session": SessionSnapshot(tenant_id=tenant, session_id=session, pinned_bundle_digest=bundle.digest,
                                   next_seq=seq, last_epoch=last_epoch),
        "turn": TurnOpenRequest(turn_id=turn, trigger="final_transcript", correlation_id=f"c-{turn}",
                                opened_at_us=at),
        "lease": LeaseSnapshot(epoch=epoch, holder="proc-a", partition=partition),
        "routing": RoutingSnapshot(topic_prefix="demo.voice", partition=partition, processor_id="proc-a"),
        "policy_decisions": decisions or PolicyDecisions(),
    }


def test_plan_hash_covers_everything_but_itself(bundle_v1: PipelineBundle) -> None:
    plan = TurnPlanResolver().resolve(**_inputs(bundle_v1))  # type: ignore[arg-type]
    assert plan.plan_hash == plan_hash(plan)
    assert plan.bundle_digest == bundle_v1.digest and plan.lease_epoch == 3
    other = TurnPlanResolver().resolve(**_inputs(bundle_v1, epoch=4))  # type: ignore[arg-type]
    assert other.plan_hash != plan.plan_hash


_cases = st.fixed_dictionaries({
    "tenant": _text, "session": _text, "turn": _text, "epoch": st.integers(2, 2**40),
    "partition": st.integers(0, 1000), "seq": st.integers(0, 2**40), "at": st.integers(0, 2**62),
})


@settings(max_examples=60, deadline=None)
@given(case=_cases, insert=st.booleans(), open_tts=st.booleans())
def test_same_inputs_same_hash_and_replay_rederives(
    bundle_v1_1: PipelineBundle, case: dict[str, Any], insert: bool, open_tts: bool,
) -> None:
    decisions = PolicyDecisions(enabled_inserts=("sentiment",) if insert else (),
                                open_circuits=("espeak_ng",) if open_tts else ())
    kwargs = _inputs(bundle_v1_1, decisions=decisions, **case)
    a = TurnPlanResolver().resolve(**kwargs)  # type: ignore[arg-type]
    b = TurnPlanResolver().resolve(**kwargs)  # type: ignore[arg-type]
    assert a == b and a.plan_hash == b.plan_hash
    recorded = plan_from_json(a.model_dump_json())
    TurnPlanResolver().verify(recorded, bundle_v1_1)
    assert ("sentiment" in [n.id for n in a.nodes]) is insert


_PLAN_SCRIPT = """
from pipelines.bundles import read_bundle
from pipelines.models import *
from pipelines.plans import TurnPlanResolver
b = read_bundle(__import__("pathlib").Path(r"{path}"))
p = TurnPlanResolver().resolve(bundle=b,
    session=SessionSnapshot(tenant_id="t", session_id="s", pinned_bundle_digest=b.digest, next_seq=1, last_epoch=0),
    turn=TurnOpenRequest(turn_id="x", trigger="end_of_utterance", correlation_id="c", opened_at_us=1),
    lease=LeaseSnapshot(epoch=1, holder="h", partition=2),
    routing=RoutingSnapshot(topic_prefix="p", partition=2, processor_id="h"),
    policy_decisions=PolicyDecisions(enabled_inserts=("sentiment",), attributes={{"b": 1, "a": [1, 2]}}))
print(p.plan_hash)
"""


def test_plan_hash_is_identical_across_processes_and_hash_seeds() -> None:
    script = _PLAN_SCRIPT.format(path=PIPELINES_DIR / "bundles" / "voice_assistant_bundle_v1_1.json")
    hashes = {
        subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True).stdout.strip()
        for seed in ("0", "7", "4242")
    }
    assert len(hashes) == 1 and hashes.pop().startswith("sha256:")


def test_insert_is_spliced_between_normalize_and_respond(bundle_v1_1: PipelineBundle) -> None:
    plan = TurnPlanResolver().resolve(**_inputs(  # type: ignore[arg-type]
        bundle_v1_1, decisions=PolicyDecisions(enabled_inserts=("sentiment",))))
    pairs = {(e.source, e.target) for e in plan.edges}
    assert ("normalize.fillers", "sentiment") in pairs and ("sentiment", "respond") in pairs
    assert ("normalize.fillers", "respond") not in pairs
    sentiment = next(n for n in plan.nodes if n.id == "sentiment")
    assert (sentiment.input, sentiment.output, sentiment.timeout_ms.value) == ("text/transcript",) * 2 + (150,)


def test_open_circuit_degrades_the_node(bundle_v1: PipelineBundle) -> None:
    plan = TurnPlanResolver().resolve(**_inputs(  # type: ignore[arg-type]
        bundle_v1, decisions=PolicyDecisions(open_circuits=("espeak_ng",))))
    tts = next(n for n in plan.nodes if n.id == "tts")
    assert tts.providers.value == () and tts.degrade.source == "decision" and tts.degrade.value == "text_only"


def test_authority_checks(bundle_v1: PipelineBundle, bundle_v1_1: PipelineBundle) -> None:
    resolver = TurnPlanResolver()
    with pytest.raises(PlanError, match="stale lease"):
        resolver.resolve(**_inputs(bundle_v1, epoch=1, last_epoch=2))  # type: ignore[arg-type]
    wrong_pin = _inputs(bundle_v1)
    wrong_pin["bundle"] = bundle_v1_1
    with pytest.raises(PlanError, match="pinned"):
        resolver.resolve(**wrong_pin)  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="unknown inserts"):
        resolver.resolve(**_inputs(bundle_v1, decisions=PolicyDecisions(  # type: ignore[arg-type]
            enabled_inserts=("sentiment",))))


def test_tampered_or_foreign_plan_fails_replay(bundle_v1: PipelineBundle) -> None:
    plan = TurnPlanResolver().resolve(**_inputs(bundle_v1))  # type: ignore[arg-type]
    raw = plan.model_dump_json().replace('"turn_timeout_ms":15000', '"turn_timeout_ms":16000')
    with pytest.raises(PlanError, match="hashes to"):
        plan_from_json(raw)
    # A plan recorded under different inputs/code: re-derivation disagrees.
    forged = plan.model_copy(update={"turn_timeout_ms": 1})
    forged = forged.model_copy(update={"plan_hash": plan_hash(forged)})
    with pytest.raises(PlanError, match="re-derived"):
        TurnPlanResolver().verify(forged, bundle_v1)
