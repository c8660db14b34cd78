"""Immutable release bundles: build, digest, verify, read and write.

A bundle pins one spec, one profile, zero or more policy overlays, the modules
and extensions they use, every node package by digest, the Event ABI version
it was built against, and the fully resolved spec. ``digest`` is the sha256 of
the canonical JSON of the bundle without its ``digest`` field, so any edit to
a shipped bundle is caught by :func:`verify_bundle`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipelines.canonical import digest_of
from pipelines.compiler import ScaffoldCompiler, artifact_ref
from pipelines.errors import ArtifactValidationError, BundleTamperedError, Issue
from pipelines.models.base import API_VERSION, Metadata
from pipelines.models.extension import ExtensionManifest, NodePackageRef
from pipelines.models.policy import PolicyOverlay
from pipelines.models.profile import ExecutionProfile
from pipelines.models.resolved import CompatWindow, PipelineBundle
from pipelines.models.spec import GraphModule, PipelineSpec
from streams.abi.version import ABI_VERSION

__all__ = [
    "BundleInput",
    "build_bundle",
    "bundle_digest",
    "bundle_json",
    "read_bundle",
    "verify_bundle",
    "write_bundle",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleInput:
    """Everything a bundle is built from. ``modules`` is keyed by ``name@version``."""

    name: str
    version: str
    spec: PipelineSpec
    profile: ExecutionProfile
    policies: tuple[PolicyOverlay, ...] = ()
    modules: dict[str, GraphModule] = field(default_factory=dict)
    extensions: tuple[ExtensionManifest, ...] = ()
    description: str = ""
    abi_version: str = ABI_VERSION


def _without_digest(bundle: PipelineBundle | dict[str, Any]) -> dict[str, Any]:
    data = bundle.model_dump(mode="json") if isinstance(bundle, PipelineBundle) else dict(bundle)
    data.pop("digest", None)
    return data


def bundle_digest(bundle: PipelineBundle | dict[str, Any]) -> str:
    """Digest of a bundle's content (everything but ``digest``)."""
    return digest_of(_without_digest(bundle))


def build_bundle(inp: BundleInput, *, compiler: ScaffoldCompiler | None = None) -> PipelineBundle:
    """Compile and freeze. Raises CompileError with every issue when the inputs do not compose."""
    resolved = (compiler or ScaffoldCompiler()).normalize(
        inp.spec, inp.profile, inp.policies, modules=inp.modules, extensions=inp.extensions
    )
    packages: dict[str, NodePackageRef] = {n.package.node_type: n.package for n in resolved.nodes}
    packages.update({i.package.node_type: i.package for i in resolved.inserts})
    major = int(inp.abi_version.split(".")[0])
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "PipelineBundle",
        "metadata": Metadata(name=inp.name, version=inp.version, description=inp.description).model_dump(),
        "spec_ref": artifact_ref(inp.spec).model_dump(),
        "profile_ref": artifact_ref(inp.profile).model_dump(),
        "policy_refs": [r.model_dump() for r in resolved.policies],
        "module_refs": [r.model_dump() for r in resolved.modules],
        "extension_refs": [r.model_dump() for r in resolved.extensions],
        "node_digests": [packages[k].model_dump() for k in sorted(packages)],
        "compat_window": CompatWindow(abi_version=inp.abi_version, runtime_abi_min=f"{major}.0.0",
                                      runtime_abi_max_exclusive=f"{major + 1}.0.0").model_dump(),
        "resolved_spec": resolved.model_dump(mode="json"),
    }
    body["digest"] = digest_of(body)
    # Round-trip through JSON so the model is exactly what a reader of the file gets.
    return PipelineBundle.model_validate_json(orjson.dumps(body))


def verify_bundle(bundle: PipelineBundle, *, source: str = "bundle") -> None:
    """Raise if the content does not hash to the recorded digest or its pins disagree."""
    actual = bundle_digest(bundle)
    if actual != bundle.digest:
        raise BundleTamperedError(source=source, recorded=bundle.digest, actual=actual)
    issues: list[Issue] = []
    rs = bundle.resolved_spec
    pairs = (("spec_ref", bundle.spec_ref, rs.spec), ("profile_ref", bundle.profile_ref, rs.profile))
    for name, pin, resolved in pairs:
        if pin != resolved:
            issues.append(Issue(source, (name,), f"pins {pin.ref} {pin.digest} but the resolved spec used "
                                f"{resolved.ref} {resolved.digest} (expected the same)"))
    if tuple(bundle.policy_refs) != tuple(rs.policies):
        issues.append(Issue(source, ("policy_refs",), "differ from resolved_spec.policies (expected the same)"))
    used = {n.package.node_type: n.package for n in rs.nodes} | {i.package.node_type: i.package for i in rs.inserts}
    pinned = {p.node_type: p for p in bundle.node_digests}
    if used != pinned:
        issues.append(Issue(source, ("node_digests",), f"pin {sorted(pinned)} but the graph uses {sorted(used)} "
                            "with their digests (expected the same)"))
    if issues:
        raise ArtifactValidationError(issues)


def bundle_json(bundle: PipelineBundle) -> bytes:
    """Readable, deterministic file form (indented, sorted keys, trailing newline)."""
    return orjson.dumps(bundle.model_dump(mode="json"), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write_bundle(bundle: PipelineBundle, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(bundle_json(bundle))
    tmp.replace(path)


def read_bundle(path: Path) -> PipelineBundle:
    """Load a bundle file; raises ArtifactValidationError with every schema issue."""
    from pipelines.loader import load_artifact

    loaded, issues = load_artifact(path)
    if loaded is None:
        raise ArtifactValidationError(issues)
    if not isinstance(loaded.model, PipelineBundle):
        raise ArtifactValidationError([Issue(str(path), ("kind",), f"got {loaded.model.kind!r} (expected PipelineBundle)")])
    return loaded.model
