"""Pipeline artifacts: models, validation, compiler, immutable bundles, rollouts, turn plans.

The tree follows the flow: ``models`` (pydantic, strict, frozen) -> ``loader``
(safe YAML/JSON with line numbers) -> ``compiler`` (graph checks, defaulting
sources) -> ``bundles`` / ``store`` (immutable, content-addressed) ->
``rollouts`` (cohorts, session pins) -> ``plans`` (frozen per-turn plans).
The artifact directories next to this file are the guide's 11 modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipelines.errors import (
    ArtifactValidationError,
    BundleTamperedError,
    CompileError,
    ImmutableVersionError,
    Issue,
    PipelinesError,
    PlanError,
    RolloutError,
)

if TYPE_CHECKING:
    from pipelines.bundles import BundleInput, build_bundle, read_bundle, verify_bundle
    from pipelines.compiler import ScaffoldCompiler
    from pipelines.models import (
        LeaseSnapshot,
        PipelineBundle,
        PolicyDecisions,
        ResolvedSpec,
        ResolvedTurnPlan,
        RoutingSnapshot,
        SessionSnapshot,
        TurnOpenRequest,
    )
    from pipelines.plans import TurnPlanResolver, plan_from_json, plan_hash
    from pipelines.rollouts import Assignment, RolloutResolver, SessionPins
    from pipelines.skew import check_skew
    from pipelines.store import ArtifactStore
    from pipelines.validate import validate_paths

# Loaded on first use: the runtime's worker processes import one model module (a node's
# config) and must not pay for the compiler, the store and the bundles at every start.
_LAZY = {
    **dict.fromkeys(("BundleInput", "build_bundle", "read_bundle", "verify_bundle"), "pipelines.bundles"),
    "ScaffoldCompiler": "pipelines.compiler",
    **dict.fromkeys(
        ("LeaseSnapshot", "PipelineBundle", "PolicyDecisions", "ResolvedSpec", "ResolvedTurnPlan",
         "RoutingSnapshot", "SessionSnapshot", "TurnOpenRequest"),
        "pipelines.models",
    ),
    **dict.fromkeys(("TurnPlanResolver", "plan_from_json", "plan_hash"), "pipelines.plans"),
    **dict.fromkeys(("Assignment", "RolloutResolver", "SessionPins"), "pipelines.rollouts"),
    "check_skew": "pipelines.skew",
    "ArtifactStore": "pipelines.store",
    "validate_paths": "pipelines.validate",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ArtifactStore",
    "ArtifactValidationError",
    "Assignment",
    "BundleInput",
    "BundleTamperedError",
    "CompileError",
    "ImmutableVersionError",
    "Issue",
    "LeaseSnapshot",
    "PipelineBundle",
    "PipelinesError",
    "PlanError",
    "PolicyDecisions",
    "ResolvedSpec",
    "ResolvedTurnPlan",
    "RolloutError",
    "RolloutResolver",
    "RoutingSnapshot",
    "ScaffoldCompiler",
    "SessionPins",
    "SessionSnapshot",
    "TurnOpenRequest",
    "TurnPlanResolver",
    "build_bundle",
    "check_skew",
    "plan_from_json",
    "plan_hash",
    "read_bundle",
    "validate_paths",
    "verify_bundle",
]
