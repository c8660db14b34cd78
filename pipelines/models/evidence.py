"""ReplayEvidenceManifest (OR-02 baseline) and GatesManifest (MVP conformance gates)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.models.base import ArtifactBase, Model, Name, SemVer, Seq

__all__ = [
    "GATE_CATEGORIES",
    "REPLAY_CHECKS",
    "DivergencePolicy",
    "EvidenceRequirement",
    "Gate",
    "GatesManifest",
    "ReplayEvidenceManifest",
    "ReplayMode",
]

ReplayCheck = Literal[
    "evidence_completeness", "lifecycle_order", "epoch_fencing", "plan_hash", "output_diff", "timing"
]
REPLAY_CHECKS: tuple[str, ...] = (
    "evidence_completeness", "lifecycle_order", "epoch_fencing", "plan_hash", "output_diff", "timing",
)
RecordingLevel = Literal["L0", "L1", "L2"]


class EvidenceRequirement(Model):
    """Fields an event type must carry at a recording level (L0 applies to every accepted turn)."""

    event: Name
    level: RecordingLevel
    fields: Seq[str] = Field(min_length=1)


class ReplayMode(Model):
    name: Literal["verify", "resimulate"]
    checks: Seq[ReplayCheck] = Field(min_length=1)


class Tolerance(Model):
    check: ReplayCheck
    max_skew_ms: int = Field(ge=0)


class DivergencePolicy(Model):
    fail_on: Seq[ReplayCheck] = Field(min_length=1)
    tolerate: Seq[Tolerance] = ()


class ReplayEvidenceManifest(ArtifactBase):
    kind: Literal["ReplayEvidenceManifest"]
    or02_evidence_schema_version: SemVer
    recording_level: RecordingLevel
    required_fields: Seq[EvidenceRequirement] = Field(min_length=1)
    modes: Seq[ReplayMode] = Field(min_length=1)
    divergence_policy: DivergencePolicy

    @model_validator(mode="after")
    def _baseline_is_mandatory(self) -> ReplayEvidenceManifest:
        # Invariant 14: L0 evidence is required whatever the recording level.
        if not any(r.level == "L0" for r in self.required_fields):
            raise ValueError("required_fields needs at least one L0 (baseline) requirement")
        failing = set(self.divergence_policy.fail_on)
        for tol in self.divergence_policy.tolerate:
            if tol.check in failing:
                raise ValueError(f"check {tol.check!r} is both in fail_on and tolerate")
        return self


GateCategory = Literal["latency", "cancel", "authority", "replay", "lifecycle"]
GATE_CATEGORIES: tuple[str, ...] = ("latency", "cancel", "authority", "replay", "lifecycle")


class Gate(Model):
    id: Name
    category: GateCategory
    features: Seq[str] = Field(min_length=1)
    invariants: Seq[int] = ()
    metric: Name
    op: Literal["<=", "<", ">=", ">", "=="]
    threshold: float
    unit: str
    test: str = Field(min_length=1)  # where the gate is asserted


class GatesManifest(ArtifactBase):
    kind: Literal["GatesManifest"]
    gates: Seq[Gate] = Field(min_length=1)

    @model_validator(mode="after")
    def _all_categories(self) -> GatesManifest:
        covered = {g.category for g in self.gates}
        missing = [c for c in GATE_CATEGORIES if c not in covered]
        if missing:
            raise ValueError(f"no gate for categories {missing} (invariant 18 needs all five)")
        ids = [g.id for g in self.gates]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate gate ids {dupes}")
        return self
