"""ExecutionProfile: named default packs (``simple/v1``) for budgets, buffers, lanes, admission."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.models.base import ArtifactBase, Model, Seq
from pipelines.models.spec import OverflowMode, TurnBoundary

__all__ = [
    "Admission",
    "BudgetDefaults",
    "BufferDefaults",
    "Draining",
    "ExecutionProfile",
    "LaneDefaults",
    "Shedding",
    "TurnDefaults",
]


class LaneDefaults(Model):
    control: Literal["strict"] | None = None
    weights: dict[str, int] | None = None
    queue_max_items: dict[str, int] | None = None


class BudgetDefaults(Model):
    node_timeout_ms: int | None = Field(default=None, ge=1)
    retries: int | None = Field(default=None, ge=0, le=10)


class BufferDefaults(Model):
    max_items: int | None = Field(default=None, ge=0)
    high_watermark: int | None = Field(default=None, ge=0)
    low_watermark: int | None = Field(default=None, ge=0)
    overflow: OverflowMode | None = None
    max_block_ms: int | None = Field(default=None, ge=0)


class Shedding(Model):
    """How low-latency mode sheds instead of blocking (invariant 9)."""

    mode: Literal["drop_oldest", "drop_newest"] | None = None
    shed_order: Seq[Literal["telemetry", "data"]] | None = None
    max_data_block_ms: int | None = Field(default=None, ge=0)


class Draining(Model):
    grace_ms: int = Field(ge=0)
    reject_new_sessions: bool


class Admission(Model):
    max_concurrent_turns_per_session: int | None = Field(default=None, ge=1)
    max_concurrent_turns_per_tenant: int | None = Field(default=None, ge=1)
    on_limit: Literal["reject", "defer"] | None = None
    draining: Draining | None = None


class TurnDefaults(Model):
    boundary: TurnBoundary | None = None
    timeout_ms: int | None = Field(default=None, ge=1)


class ExecutionProfile(ArtifactBase):
    kind: Literal["ExecutionProfile"]
    mode: Literal["low_latency", "balanced"] | None = None
    lane_defaults: LaneDefaults = LaneDefaults()
    budget_defaults: BudgetDefaults = BudgetDefaults()
    buffer_defaults: BufferDefaults = BufferDefaults()
    shedding: Shedding = Shedding()
    admission: Admission = Admission()
    turn_defaults: TurnDefaults = TurnDefaults()
