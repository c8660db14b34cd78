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

# One per replay check (replay.model.DivergenceKind has the same values; a test keeps them equal).
ReplayCheck = Literal[
    "evidence_completeness", "lifecycle_order", "sequence", "epoch_fencing", "plan_hash",
    "bundle_pinning", "plan_change", "cancel_fencing", "correlation_chain", "duplicate_output",
    "output_diff", "timing",
]
REPLAY_CHECKS: tuple[str, ...] = (
    "evidence_completeness", "lifecycle_order", "sequence", "epoch_fencing", "plan_hash",
    "bundle_pinning", "plan_change", "cancel_fencing", "correlation_chain", "duplicate_output",
    "output_diff", "timing",
)
RecordingLevel = Literal["L0", "L1", "L2"]


class EvidenceRequirement(Model):
    """Fields an event type must carry at a recording level (L0 applies to every accepted turn)."""

    event: Name
    level: RecordingLevel
    fields: Seq[str] = Field(min_length=1)


class ReplayMode(Model):
    """The checks a replay in this mode runs (``resimulate`` also serves candidate bundles)."""

    name: Literal["verify", "resimulate"]
    checks: Seq[ReplayCheck] = Field(min_length=1)


class Tolerance(Model):
    """Divergences of ``check`` are reported but do not fail the replay; for ``timing``,
    only a clock skew up to ``max_skew_ms`` is tolerated (a larger one fails)."""

    check: ReplayCheck
    max_skew_ms: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _skew_for_timing_only(self) -> Tolerance:
        if (self.check == "timing") != (self.max_skew_ms is not None):
            raise ValueError("max_skew_ms is required for check 'timing' and only for it")
        return self


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
        tolerated = {tol.check for tol in self.divergence_policy.tolerate}
        for check in sorted(failing & tolerated):
            raise ValueError(f"check {check!r} is both in fail_on and tolerate")
        names = [m.name for m in self.modes]
        if len(set(names)) != len(names):
            raise ValueError(f"modes are named more than once: {names}")
        for mode in self.modes:
            # A check that runs either fails the replay or is tolerated, never silently ignored.
            judged = [c for c in mode.checks if c not in failing | tolerated]
            if judged:
                raise ValueError(f"mode {mode.name!r} runs {judged}, which are in neither "
                                 "divergence_policy.fail_on nor tolerate")
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
