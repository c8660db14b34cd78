"""VersionSkewPolicy: schema compatibility levels, ABI skew, node package windows, deprecations.

The ``schema_compatibility`` section is also read by the Avro compat checker
(``rspp compat check``); keep its shape: ``default`` plus per-subject overrides.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipelines.models.base import ArtifactBase, Model, Name, SemVer, Seq, semver_key

__all__ = [
    "AbiSkew",
    "CompatibilityLevel",
    "Deprecation",
    "NodePackageWindow",
    "SchemaCompatibility",
    "VersionRange",
    "VersionSkewPolicy",
]

CompatibilityLevel = Literal[
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"
]
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SchemaCompatibility(Model):
    default: CompatibilityLevel
    subjects: dict[str, CompatibilityLevel] = Field(default_factory=dict)


class VersionRange(Model):
    """``min <= v < max_exclusive``."""

    min: SemVer
    max_exclusive: SemVer

    @model_validator(mode="after")
    def _ordered(self) -> VersionRange:
        if semver_key(self.min) >= semver_key(self.max_exclusive):
            raise ValueError(f"empty range: min {self.min} is not below max_exclusive {self.max_exclusive}")
        return self

    def contains(self, version: str) -> bool:
        return semver_key(self.min) <= semver_key(version) < semver_key(self.max_exclusive)


class AbiSkew(Model):
    runtime_supported: VersionRange
    max_major_skew: int = Field(ge=0)
    max_minor_skew: int = Field(ge=0)


class NodePackageWindow(Model):
    node_type: str
    versions: VersionRange


class Deprecation(Model):
    id: Name
    subject: str = Field(pattern=r"^(node_type:[a-z0-9_.]+|resolved:[a-z0-9_.]+=.+)$")
    deprecated_on: str
    removed_after: str
    replacement: str | None = None

    @field_validator("deprecated_on", "removed_after")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        import datetime as _dt

        try:
            if not _DATE.match(value):
                raise ValueError(value)
            _dt.date.fromisoformat(value)  # also rejects 2026-02-30
        except ValueError:
            raise ValueError(f"{value!r} is not a calendar date (expected YYYY-MM-DD)") from None
        return value

    @model_validator(mode="after")
    def _window(self) -> Deprecation:
        if self.removed_after <= self.deprecated_on:
            raise ValueError("removed_after must be later than deprecated_on")
        return self


class VersionSkewPolicy(ArtifactBase):
    kind: Literal["VersionSkewPolicy"]
    schema_compatibility: SchemaCompatibility
    abi: AbiSkew
    node_packages: Seq[NodePackageWindow] = ()
    deprecations: Seq[Deprecation] = ()
    conformance_profiles: Seq[Name] = ()
