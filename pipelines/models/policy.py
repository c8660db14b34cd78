"""PolicyOverlay: provider order, retries, circuit breakers, degrade rules, cost, graph inserts.

Overlays apply on top of the spec (later overlays win) when compiling, and
their insert rules are switched on per turn by policy decisions at the turn
boundary, never mid-turn.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue, model_validator

from pipelines.models.base import ArtifactBase, Model, Name, Seq
from pipelines.models.spec import Budget, DegradeAction, NodeId, NodeType

__all__ = [
    "CircuitBreaker",
    "CostRule",
    "DegradeRule",
    "InsertNode",
    "InsertRule",
    "PolicyOverlay",
    "ProviderRule",
]


class _Targeted(Model):
    node: str | None = None  # resolved node id, e.g. "stt" or "normalize.clean"
    node_type: NodeType | None = None

    @model_validator(mode="after")
    def _one_target(self) -> _Targeted:
        if (self.node is None) == (self.node_type is None):
            raise ValueError("a rule needs exactly one of 'node' or 'node_type'")
        return self


class ProviderRule(_Targeted):
    order: Seq[Name] = Field(min_length=1)
    retries: int | None = Field(default=None, ge=0, le=10)
    timeout_ms: int | None = Field(default=None, ge=1)


class DegradeRule(_Targeted):
    action: DegradeAction
    reply: str | None = None

    @model_validator(mode="after")
    def _reply_for_canned(self) -> DegradeRule:
        if self.action == "canned_reply" and not self.reply:
            raise ValueError("action 'canned_reply' needs a 'reply'")
        return self


class CircuitBreaker(Model):
    provider: Name
    failure_threshold: int = Field(ge=1)
    window_ms: int = Field(ge=1)
    open_ms: int = Field(ge=1)


class CostRule(Model):
    max_units_per_turn: int = Field(ge=0)
    on_exceeded: Literal["degrade", "reject"] = "degrade"


class InsertNode(Model):
    id: NodeId
    type: NodeType
    config: dict[str, JsonValue] = Field(default_factory=dict)
    budget: Budget | None = None


class InsertRule(Model):
    """Splice ``node`` after ``after`` when a turn's policy decisions enable ``id``."""

    id: Name
    after: str
    node: InsertNode
    default_enabled: bool = False


class PolicyOverlay(ArtifactBase):
    kind: Literal["PolicyOverlay"]
    providers: Seq[ProviderRule] = ()
    degrade: Seq[DegradeRule] = ()
    circuit_breakers: Seq[CircuitBreaker] = ()
    cost: CostRule | None = None
    inserts: Seq[InsertRule] = ()
