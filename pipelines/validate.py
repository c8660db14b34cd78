"""``rspp validate``: schema checks per file, then semantic checks across the loaded set.

Cross-artifact checks: specs and modules compile (against the profile a spec
names, the modules and extensions present), bundles verify and their pins match
the sources that are present, rollouts point at present bundles with matching
digests and never move to an older candidate, transport bindings name a
present pipeline. Issues from compilation name artifacts; :func:`attribute`
maps them back to the file and YAML line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipelines.bundles import verify_bundle
from pipelines.catalog import NodeCatalog
from pipelines.compiler import ScaffoldCompiler
from pipelines.compiler.resolve import lane_weight_issues
from pipelines.errors import ArtifactValidationError, BundleTamperedError, CompileError, Issue
from pipelines.loader import LoadedArtifact, line_for, load_paths
from pipelines.models import (
    ArtifactBase,
    ExecutionProfile,
    ExtensionManifest,
    GraphModule,
    PipelineBundle,
    PipelineSpec,
    RolloutManifest,
    TransportBinding,
    VersionSkewPolicy,
    semver_key,
)
from pipelines.skew import check_skew
from pipelines.store import content_digest
from streams.abi.version import ABI_VERSION

__all__ = ["ArtifactSet", "attribute", "check_bundle", "check_set", "validate_paths"]


@dataclass(frozen=True, slots=True)
class ArtifactSet:
    """Loaded artifacts indexed by ``Kind/name@version``."""

    loaded: tuple[LoadedArtifact, ...]

    @property
    def by_origin(self) -> dict[str, LoadedArtifact]:
        return {a.model.origin: a for a in self.loaded}

    def of(self, model: type[ArtifactBase]) -> list[ArtifactBase]:
        return [a.model for a in self.loaded if isinstance(a.model, model)]

    def modules(self) -> dict[str, GraphModule]:
        return {m.ref: m for m in self.of(GraphModule) if isinstance(m, GraphModule)}

    def extensions(self) -> tuple[ExtensionManifest, ...]:
        return tuple(e for e in self.of(ExtensionManifest) if isinstance(e, ExtensionManifest))

    def find(self, kind: str, ref: str) -> ArtifactBase | None:
        found = self.by_origin.get(f"{kind}/{ref}")
        return found.model if found else None


def attribute(issues: Iterable[Issue], artifacts: ArtifactSet) -> list[Issue]:
    """Rewrite origin-labelled issues to ``file:line`` using the loaded files' positions."""
    index = artifacts.by_origin
    out: list[Issue] = []
    for issue in issues:
        source = index.get(issue.file)
        if source is None:
            out.append(issue)
        else:
            line = issue.line or line_for(source.positions, issue.loc)
            out.append(Issue(str(source.path), issue.loc, issue.message, line))
    return out


def _duplicates(artifacts: ArtifactSet) -> list[Issue]:
    seen: dict[str, LoadedArtifact] = {}
    issues: list[Issue] = []
    for art in artifacts.loaded:
        first = seen.setdefault(art.model.origin, art)
        if first is not art:
            issues.append(Issue(str(art.path), ("metadata", "version"),
                                f"{art.model.origin} is also defined in {first.path} (expected one definition "
                                "per name@version; bump the version)", line_for(art.positions, ("metadata", "version"))))
    return issues


def _check_spec(spec: PipelineSpec, artifacts: ArtifactSet, compiler: ScaffoldCompiler) -> list[Issue]:
    modules, extensions = artifacts.modules(), artifacts.extensions()
    if spec.profile is None:
        return compiler.validate_spec(spec, modules=modules, extensions=extensions)
    profile = artifacts.find("ExecutionProfile", spec.profile)
    if not isinstance(profile, ExecutionProfile):
        issues = compiler.validate_spec(spec, modules=modules, extensions=extensions)
        return [*issues, Issue(spec.origin, ("profile",), f"unknown profile {spec.profile!r} (expected one of: "
                               f"{', '.join(p.ref for p in artifacts.of(ExecutionProfile)) or 'none loaded'})")]
    try:
        compiler.normalize(spec, profile, (), modules=modules, extensions=extensions)
    except CompileError as exc:
        return list(exc.issues)
    return []


def check_bundle(bundle: PipelineBundle, artifacts: ArtifactSet, skew: list[VersionSkewPolicy]) -> list[Issue]:
    """Digest, pins against sources present in ``artifacts``, and version skew (origin-labelled)."""
    try:
        verify_bundle(bundle, source=bundle.origin)
    except BundleTamperedError as exc:
        return [Issue(bundle.origin, ("digest",), str(exc).split(": ", 1)[1])]
    except ArtifactValidationError as exc:
        return list(exc.issues)
    issues: list[Issue] = []
    pins = [("spec_ref", bundle.spec_ref), ("profile_ref", bundle.profile_ref)]
    pins += [(f"policy_refs.{i}", r) for i, r in enumerate(bundle.policy_refs)]
    pins += [(f"module_refs.{i}", r) for i, r in enumerate(bundle.module_refs)]
    pins += [(f"extension_refs.{i}", r) for i, r in enumerate(bundle.extension_refs)]
    for field, pin in pins:
        present = artifacts.find(pin.kind, pin.ref)
        if present is not None and content_digest(present) != pin.digest:
            issues.append(Issue(bundle.origin, tuple(field.split(".")),
                                f"pins {pin.kind} {pin.ref} at {pin.digest} but its source now hashes to "
                                f"{content_digest(present)} (expected a new version for changed content, "
                                "then a rebuilt bundle)"))
    for policy in skew:
        for problem in check_skew(policy, bundle, runtime_abi=ABI_VERSION, today=dt.date.today()):
            issues.append(Issue(bundle.origin, ("compat_window",), problem))
    return issues


def _check_rollout(rollout: RolloutManifest, artifacts: ArtifactSet) -> list[Issue]:
    issues: list[Issue] = []
    for field in ("baseline", "candidate", "rollback"):
        pin = getattr(rollout, field)
        present = artifacts.find("PipelineBundle", pin.bundle)
        if present is None:
            issues.append(Issue(rollout.origin, (field, "bundle"),
                                f"unknown bundle {pin.bundle!r} (expected one of: "
                                f"{', '.join(b.ref for b in artifacts.of(PipelineBundle)) or 'none loaded'})"))
        elif isinstance(present, PipelineBundle) and present.digest != pin.digest:
            issues.append(Issue(rollout.origin, (field, "digest"),
                                f"{pin.bundle} is {present.digest} (expected the pinned {pin.digest} to match)"))
    base, cand = rollout.baseline.bundle.split("@"), rollout.candidate.bundle.split("@")
    if base[0] == cand[0] and semver_key(cand[1]) <= semver_key(base[1]):
        issues.append(Issue(rollout.origin, ("candidate", "bundle"),
                            f"version regression: candidate {rollout.candidate.bundle} is not newer than baseline "
                            f"{rollout.baseline.bundle} (expected a higher version)"))
    return issues


def check_set(artifacts: ArtifactSet) -> list[Issue]:
    """All cross-artifact issues, origin-labelled (see :func:`attribute`)."""
    compiler = ScaffoldCompiler()
    issues = _duplicates(artifacts)
    known_types = set(NodeCatalog().with_extensions(artifacts.extensions()).types)
    skew = [p for p in artifacts.of(VersionSkewPolicy) if isinstance(p, VersionSkewPolicy)]
    for art in artifacts.loaded:
        model = art.model
        if isinstance(model, GraphModule):
            issues += compiler.validate_spec(model, extensions=artifacts.extensions())
        elif isinstance(model, PipelineSpec):
            issues += _check_spec(model, artifacts, compiler)
        elif isinstance(model, PipelineBundle):
            issues += check_bundle(model, artifacts, skew)
        elif isinstance(model, ExecutionProfile) and model.lane_defaults.weights is not None:
            issues += lane_weight_issues(model.origin, model.lane_defaults.weights, ("lane_defaults", "weights"))
        elif isinstance(model, RolloutManifest):
            issues += _check_rollout(model, artifacts)
        elif isinstance(model, TransportBinding) and artifacts.find("PipelineSpec", model.pipeline) is None:
            issues.append(Issue(model.origin, ("pipeline",), f"unknown pipeline {model.pipeline!r} "
                                "(expected a PipelineSpec name@version among the validated files)"))
        elif isinstance(model, VersionSkewPolicy):
            for i, window in enumerate(model.node_packages):
                if window.node_type not in known_types:
                    issues.append(Issue(model.origin, ("node_packages", i, "node_type"),
                                        f"unknown node type {window.node_type!r} (expected one of: "
                                        f"{', '.join(sorted(known_types))})"))
    return issues


def validate_paths(paths: Iterable[Path]) -> tuple[ArtifactSet, list[Issue]]:
    """Load and check everything under ``paths``; issues are attributed to files and lines."""
    loaded, issues = load_paths(paths)
    artifacts = ArtifactSet(tuple(loaded))
    issues += attribute(check_set(artifacts), artifacts)
    return artifacts, list(dict.fromkeys(issues))  # a profile shared by two specs reports once
