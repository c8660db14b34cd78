"""ResolvedSpec (the effective graph, every field with its defaulting source) and PipelineBundle.

``Sourced.source`` is one of ``spec``, ``profile``, ``policy:<name>``,
``module default`` or ``simple/v1 default``.
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import Field, JsonValue

from pipelines.models.base import ArtifactBase, ArtifactRef, Digest, Model, Name, SemVer, Seq
from pipelines.models.extension import NodePackageRef
from pipelines.models.policy import InsertNode
from pipelines.models.spec import DegradeAction

__all__ = [
    "CompatWindow",
    "PipelineBundle",
    "ResolvedAdmission",
    "ResolvedEdge",
    "ResolvedInsert",
    "ResolvedLanes",
    "ResolvedNode",
    "ResolvedShedding",
    "ResolvedSpec",
    "ResolvedTurn",
    "Sourced",
]

V = TypeVar("V")


class Sourced(Model, Generic[V]):
    value: V
    source: str


class ResolvedNode(Model):
    id: str
    type: str
    module: str | None  # name@version of the module it came from, if any
    input: str
    output: str
    package: NodePackageRef
    config: Sourced[dict[str, JsonValue]]
    timeout_ms: Sourced[int]
    retries: Sourced[int]
    providers: Sourced[Seq[str]]
    degrade: Sourced[DegradeAction]
    degrade_reply: Sourced[str | None]


class ResolvedEdge(Model):
    source: str
    target: str
    media_type: str
    lane: Sourced[str]
    max_items: Sourced[int]
    high_watermark: Sourced[int]
    low_watermark: Sourced[int]
    overflow: Sourced[str]
    max_block_ms: Sourced[int]


class ResolvedLanes(Model):
    control: Sourced[str]
    data_weight: Sourced[int]
    telemetry_weight: Sourced[int]
    control_queue_max_items: Sourced[int]
    data_queue_max_items: Sourced[int]
    telemetry_queue_max_items: Sourced[int]


class ResolvedTurn(Model):
    boundary: Sourced[str]
    timeout_ms: Sourced[int]


class ResolvedShedding(Model):
    mode: Sourced[str]
    shed_order: Sourced[Seq[str]]
    max_data_block_ms: Sourced[int]


class ResolvedAdmission(Model):
    max_concurrent_turns_per_session: Sourced[int]
    max_concurrent_turns_per_tenant: Sourced[int]
    on_limit: Sourced[str]
    drain_grace_ms: Sourced[int]
    drain_reject_new_sessions: Sourced[bool]


class ResolvedInsert(Model):
    id: str
    after: str
    before: Seq[str]
    node: InsertNode
    package: NodePackageRef
    providers: Seq[str]
    timeout_ms: int
    default_enabled: bool
    source: str


class ResolvedSpec(Model):
    resolved_spec_id: str
    spec: ArtifactRef
    profile: ArtifactRef
    policies: Seq[ArtifactRef] = ()
    modules: Seq[ArtifactRef] = ()
    extensions: Seq[ArtifactRef] = ()
    mode: Sourced[str]
    input: str
    output: str
    entry: str
    exit: str
    nodes: Seq[ResolvedNode]
    edges: Seq[ResolvedEdge]
    lanes: ResolvedLanes
    turn: ResolvedTurn
    shedding: ResolvedShedding
    admission: ResolvedAdmission
    inserts: Seq[ResolvedInsert] = ()
    circuit_breakers: dict[str, dict[str, int]] = Field(default_factory=dict)
    cost_max_units_per_turn: Sourced[int | None]


class CompatWindow(Model):
    abi_version: SemVer
    runtime_abi_min: SemVer
    runtime_abi_max_exclusive: SemVer


class PipelineBundle(ArtifactBase):
    """Immutable release unit. ``digest`` = sha256 of canonical JSON without ``digest``."""

    kind: Literal["PipelineBundle"]
    spec_ref: ArtifactRef
    profile_ref: ArtifactRef
    policy_refs: Seq[ArtifactRef] = ()
    module_refs: Seq[ArtifactRef] = ()
    extension_refs: Seq[ArtifactRef] = ()
    node_digests: Seq[NodePackageRef]
    compat_window: CompatWindow
    resolved_spec: ResolvedSpec
    digest: Digest

    @property
    def bundle_id(self) -> str:
        return self.ref

    @property
    def name(self) -> Name:
        return self.metadata.name
