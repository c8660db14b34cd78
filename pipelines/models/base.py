"""Shared pieces of every artifact model: strict frozen base, names, versions, refs.

Every artifact carries ``apiVersion``/``kind``/``metadata.name``/``metadata.version``
(semver). Artifacts refer to each other as ``name@version``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

__all__ = [
    "API_VERSION",
    "DIGEST_PATTERN",
    "REF_PATTERN",
    "ArtifactBase",
    "ArtifactRef",
    "Digest",
    "Metadata",
    "Model",
    "Name",
    "Ref",
    "SemVer",
    "Seq",
    "parse_ref",
    "semver_key",
]

API_VERSION = "rspp.dev/v1"
_NAME = r"[a-z][a-z0-9_]*(?:[-.][a-z0-9_]+)*"
_SEMVER = r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?"
REF_PATTERN = rf"^{_NAME}@{_SEMVER}$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"

Name = Annotated[str, StringConstraints(pattern=rf"^{_NAME}$", max_length=128)]
SemVer = Annotated[str, StringConstraints(pattern=rf"^{_SEMVER}$", max_length=64)]
Ref = Annotated[str, StringConstraints(pattern=REF_PATTERN, max_length=200)]
Digest = Annotated[str, StringConstraints(pattern=DIGEST_PATTERN)]

T = TypeVar("T")


def _as_tuple(value: object) -> object:
    # YAML and JSON give lists; frozen models keep tuples so nothing mutates them.
    return tuple(value) if isinstance(value, list) else value


Seq = Annotated[tuple[T, ...], BeforeValidator(_as_tuple)]


class Model(BaseModel):
    """Strict, closed, immutable: unknown fields and coercions are errors."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Metadata(Model):
    name: Name
    version: SemVer
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class ArtifactBase(Model):
    """Common header. ``kind`` is narrowed to a Literal by every artifact."""

    apiVersion: Literal["rspp.dev/v1"]  # noqa: N815 - the wire name authors write
    kind: str
    metadata: Metadata

    @property
    def ref(self) -> str:
        return f"{self.metadata.name}@{self.metadata.version}"

    @property
    def origin(self) -> str:
        """Stable label used to attribute issues back to the source file."""
        return f"{self.kind}/{self.ref}"


class ArtifactRef(Model):
    """A pinned reference: ``name@version`` plus the content digest."""

    kind: str
    name: Name
    version: SemVer
    digest: Digest

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def parse_ref(ref: str) -> tuple[str, str]:
    """Split ``name@version``; raises ValueError on anything else."""
    if not re.match(REF_PATTERN, ref):
        raise ValueError(f"bad reference {ref!r} (expected name@semver, e.g. simple@1.0.0)")
    name, _, version = ref.partition("@")
    return name, version


def semver_key(version: str) -> tuple[int, int, int, int, str]:
    """Sort key for semver: pre-releases sort before the release."""
    core, _, _build = version.partition("+")
    core, _, pre = core.partition("-")
    major, minor, patch = (int(p) for p in core.split("."))
    return (major, minor, patch, 0 if pre else 1, pre)
