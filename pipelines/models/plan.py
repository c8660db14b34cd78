"""Inputs and output of turn-plan resolution: the snapshots frozen into a ResolvedTurnPlan.

Every input is a plain value model so the replay engine can read it back out of
a recorded plan and re-derive the same ``plan_hash``.
"""

from __future__ import annotations

from pydantic import Field, JsonValue

from pipelines.models.base import Digest, Model, Seq
from pipelines.models.fast import fast_init
from pipelines.models.resolved import ResolvedEdge, ResolvedNode

__all__ = [
    "MAX_ID_LENGTH",
    "NO_DECISIONS",
    "DeterminismContext",
    "LeaseSnapshot",
    "PlanInputs",
    "PolicyDecisions",
    "ResolvedTurnPlan",
    "RoutingSnapshot",
    "SessionSnapshot",
    "TurnOpenRequest",
    "lease_snapshot",
    "plan_inputs",
    "routing_snapshot",
    "session_snapshot",
    "turn_open_request",
]


# Ids come from voice services and are copied into every log event and changelog key of
# the session: bounded, so one producer cannot make every record of a session huge.
MAX_ID_LENGTH = 256


class SessionSnapshot(Model):
    tenant_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    session_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    pinned_bundle_digest: Digest
    next_seq: int = Field(ge=0)
    last_epoch: int = Field(ge=0)
    open_turns: int = Field(default=0, ge=0)


class TurnOpenRequest(Model):
    turn_id: str = Field(min_length=1)
    trigger: str = Field(min_length=1)  # final_transcript | end_of_utterance | text
    correlation_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    opened_at_us: int = Field(ge=0)


class LeaseSnapshot(Model):
    epoch: int = Field(ge=0)
    holder: str = Field(min_length=1)
    partition: int = Field(ge=0)


class RoutingSnapshot(Model):
    topic_prefix: str = Field(min_length=1)
    partition: int = Field(ge=0)
    processor_id: str = Field(min_length=1)
    region: str = "local"


class PolicyDecisions(Model):
    """Turn-boundary decisions: tripped circuits, degraded nodes, enabled inserts."""

    open_circuits: Seq[str] = ()
    degraded_nodes: Seq[str] = ()
    enabled_inserts: Seq[str] = ()
    attributes: dict[str, JsonValue] = Field(default_factory=dict)


class PlanInputs(Model):
    session: SessionSnapshot
    turn: TurnOpenRequest
    lease: LeaseSnapshot
    routing: RoutingSnapshot
    policy_decisions: PolicyDecisions


NO_DECISIONS = PolicyDecisions()

# The runtime's per-turn constructors: the models' own checks, derived from the fields
# above (pipelines.models.fast), without a pydantic validation per snapshot per turn.
session_snapshot = fast_init(SessionSnapshot)
turn_open_request = fast_init(TurnOpenRequest)
lease_snapshot = fast_init(LeaseSnapshot)
routing_snapshot = fast_init(RoutingSnapshot)
plan_inputs = fast_init(PlanInputs)


class DeterminismContext(Model):
    seed: int
    clock: str  # "recorded": nodes read time from events, not the wall clock


class ResolvedTurnPlan(Model):
    resolved_turn_plan_id: str
    plan_version: int
    bundle_id: str
    bundle_digest: Digest
    abi_version: str
    inputs: PlanInputs
    nodes: Seq[ResolvedNode]
    edges: Seq[ResolvedEdge]
    turn_boundary: str
    turn_timeout_ms: int
    determinism_context: DeterminismContext
    plan_hash: Digest

    @property
    def lease_epoch(self) -> int:
        return self.inputs.lease.epoch
