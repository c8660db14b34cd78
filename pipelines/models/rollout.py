"""RolloutManifest (the only mutable traffic-control surface) and TransportBinding."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.models.base import ArtifactBase, Digest, Model, Name, Ref, Seq

__all__ = ["BundlePin", "Guardrails", "RolloutManifest", "RolloutStage", "TenantRules", "TransportBinding"]


class BundlePin(Model):
    bundle: Ref
    digest: Digest


class RolloutStage(Model):
    name: Name
    percent: float = Field(ge=0, le=100)


class TenantRules(Model):
    exclude: Seq[str] = ()  # always baseline
    force_candidate: Seq[str] = ()  # always candidate (internal dogfood tenants)


class Guardrails(Model):
    """Admission constraints bound to the candidate; the control plane halts on breach."""

    max_sessions_on_candidate: int | None = Field(default=None, ge=0)
    rollback_on_error_rate: float | None = Field(default=None, ge=0, le=1)
    rollback_on_p95_latency_ms: int | None = Field(default=None, ge=1)


class RolloutManifest(ArtifactBase):
    kind: Literal["RolloutManifest"]
    strategy: Literal["canary", "percentage", "tenant"]
    baseline: BundlePin
    candidate: BundlePin
    rollback: BundlePin
    stages: Seq[RolloutStage] = Field(min_length=1)
    current_stage: Name
    tenants: TenantRules = TenantRules()
    guardrails: Guardrails = Guardrails()

    @model_validator(mode="after")
    def _stages(self) -> RolloutManifest:
        names = [s.name for s in self.stages]
        if self.current_stage not in names:
            raise ValueError(f"current_stage {self.current_stage!r} is not one of the stages {names}")
        percents = [s.percent for s in self.stages]
        if percents != sorted(percents):
            raise ValueError("stage percents must not decrease")
        return self

    @property
    def stage(self) -> RolloutStage:
        return next(s for s in self.stages if s.name == self.current_stage)


class TransportBinding(ArtifactBase):
    """How a transport adapter (e.g. a LiveKit room bridge) maps onto the lanes."""

    kind: Literal["TransportBinding"]
    adapter: Literal["livekit", "simulated"]
    pipeline: Ref
    topic_prefix: Name
    room_pattern: str = Field(min_length=1)
    audio_sample_rate_hz: Literal[8000, 16000, 24000, 48000]
    audio_channels: Literal[1, 2]
    frame_ms: int = Field(ge=5, le=100)
    lanes: dict[Literal["audio", "transcript", "barge_in", "cancel", "metrics"], Literal["control", "data", "telemetry"]]
