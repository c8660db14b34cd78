"""Artifact models, one file per family. ``KINDS`` maps ``kind`` to its model."""

from __future__ import annotations

from pipelines.models.base import (
    API_VERSION,
    ArtifactBase,
    ArtifactRef,
    Metadata,
    parse_ref,
    semver_key,
)
from pipelines.models.compat import VersionSkewPolicy
from pipelines.models.evidence import GatesManifest, ReplayEvidenceManifest
from pipelines.models.extension import ExtensionManifest, NodePackageRef
from pipelines.models.plan import (
    LeaseSnapshot,
    PlanInputs,
    PolicyDecisions,
    ResolvedTurnPlan,
    RoutingSnapshot,
    SessionSnapshot,
    TurnOpenRequest,
)
from pipelines.models.policy import PolicyOverlay
from pipelines.models.profile import ExecutionProfile
from pipelines.models.resolved import PipelineBundle, ResolvedSpec, Sourced
from pipelines.models.rollout import RolloutManifest, TransportBinding
from pipelines.models.spec import GraphModule, PipelineSpec

__all__ = [
    "API_VERSION",
    "KINDS",
    "ArtifactBase",
    "ArtifactRef",
    "ExecutionProfile",
    "ExtensionManifest",
    "GatesManifest",
    "GraphModule",
    "LeaseSnapshot",
    "Metadata",
    "NodePackageRef",
    "PipelineBundle",
    "PipelineSpec",
    "PlanInputs",
    "PolicyDecisions",
    "PolicyOverlay",
    "ReplayEvidenceManifest",
    "ResolvedSpec",
    "ResolvedTurnPlan",
    "RolloutManifest",
    "RoutingSnapshot",
    "SessionSnapshot",
    "Sourced",
    "TransportBinding",
    "TurnOpenRequest",
    "VersionSkewPolicy",
    "parse_ref",
    "semver_key",
]

KINDS: dict[str, type[ArtifactBase]] = {
    model.model_fields["kind"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (
        PipelineSpec,
        GraphModule,
        ExecutionProfile,
        PolicyOverlay,
        PipelineBundle,
        RolloutManifest,
        ExtensionManifest,
        ReplayEvidenceManifest,
        VersionSkewPolicy,
        GatesManifest,
        TransportBinding,
    )
}
