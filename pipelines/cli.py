"""``rspp validate | compile | bundle | rollout``: the pipeline author's commands.

Every command reports all problems at once, one line each
(``file:line: path: what is wrong (expected …)``), and exits 1; ``--json``
prints a machine-readable report instead of tables.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from pipelines.bundles import BundleInput, build_bundle, read_bundle, verify_bundle, write_bundle
from pipelines.compiler import ScaffoldCompiler
from pipelines.errors import (
    ArtifactValidationError,
    BundleTamperedError,
    CompileError,
    ImmutableVersionError,
    Issue,
    NotFoundError,
    PipelinesError,
)
from pipelines.loader import load_paths
from pipelines.models import (
    ExecutionProfile,
    ExtensionManifest,
    GraphModule,
    PipelineBundle,
    PipelineSpec,
    PolicyOverlay,
    ResolvedSpec,
    RolloutManifest,
    VersionSkewPolicy,
)
from pipelines.rollouts import RolloutResolver, SessionPins
from pipelines.shipped import PIPELINES_DIR, ROLLOUT_FILE
from pipelines.store import ArtifactStore, default_store_root
from pipelines.validate import ArtifactSet, attribute, check_bundle, validate_paths
from streams.output import console, emit_json

__all__ = ["register", "sourced_rows"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON report.")]
SpecOpt = Annotated[Path, typer.Option("--spec", help="PipelineSpec file, e.g. pipelines/specs/simple_v1.yaml.")]
ProfileOpt = Annotated[Path, typer.Option("--profile", help="ExecutionProfile file, e.g. pipelines/profiles/simple_v1.yaml.")]
PolicyOpt = Annotated[list[Path] | None, typer.Option(
    "--policy", help="PolicyOverlay file; repeat to layer several (later ones win).")]
ModuleDirOpt = Annotated[Path, typer.Option(
    "--module-dir", help="Directory of GraphModule files the spec may import.")]
ExtensionOpt = Annotated[list[Path] | None, typer.Option(
    "--extension", help="ExtensionManifest file declaring a custom node type; repeatable.")]
StoreOpt = Annotated[Path | None, typer.Option(
    "--store", help="ArtifactStore directory (default $RSPP_HOME/store, else ~/.cache/rspp/store).")]

bundle_app = typer.Typer(help="Build, verify and inspect immutable, content-addressed PipelineBundles.",
                         no_args_is_help=True)
rollout_app = typer.Typer(help="Resolve which bundle a session gets under a RolloutManifest.", no_args_is_help=True)


def _fail(issues: Iterable[Issue | str]) -> typer.Exit:
    for issue in issues:
        sys.stderr.write(f"{issue}\n")
    return typer.Exit(1)


def _load(paths: list[Path]) -> ArtifactSet:
    loaded, issues = load_paths(paths)
    if issues:
        raise _fail(issues)
    return ArtifactSet(tuple(loaded))


def _one(artifacts: ArtifactSet, path: Path, model: type[Any]) -> Any:
    for art in artifacts.loaded:
        if art.path == path:
            if not isinstance(art.model, model):
                raise _fail([Issue(str(path), ("kind",), f"got {art.model.kind} (expected {model.__name__})")])
            return art.model
    raise _fail([Issue(str(path), (), "no artifact found (expected a .yaml/.yml/.json file)")])


def _compile_inputs(spec: Path, profile: Path, policies: list[Path] | None, module_dir: Path,
                    extensions: list[Path] | None) -> tuple[ArtifactSet, BundleInput]:
    pols, exts = policies or [], extensions or []
    if not module_dir.is_dir():
        raise NotFoundError(f"--module-dir {module_dir}: not a directory")
    artifacts = _load([spec, profile, *pols, *exts, module_dir])
    modules = {m.ref: m for m in artifacts.of(GraphModule) if isinstance(m, GraphModule)}
    if not modules:  # else every node of the spec reports its own unknown module
        raise NotFoundError(f"--module-dir {module_dir}: no GraphModule artifacts")
    inp = BundleInput(
        name="unnamed", version="0.0.0", spec=_one(artifacts, spec, PipelineSpec),
        profile=_one(artifacts, profile, ExecutionProfile),
        policies=tuple(_one(artifacts, p, PolicyOverlay) for p in pols), modules=modules,
        extensions=tuple(_one(artifacts, e, ExtensionManifest) for e in exts),
    )
    return artifacts, inp


def sourced_rows(value: Any, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
    """(dotted field, value, source) for every sourced value in a dumped ResolvedSpec."""
    if isinstance(value, dict):
        if set(value) == {"value", "source"}:
            yield prefix, value["value"], value["source"]
            return
        for key, item in value.items():
            yield from sourced_rows(item, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            label: Any = i
            if isinstance(item, dict):
                label = item.get("id") or (f"{item['source']}->{item['target']}" if "target" in item else i)
            yield from sourced_rows(item, f"{prefix}.{label}")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(str(text).split())
    return text if len(text) <= 70 else text[:67] + "..."


def validate(
    paths: Annotated[list[Path], typer.Argument(help="Artifact files or directories (searched recursively).")],
    json_out: JsonOpt = False,
) -> None:
    """Validate artifacts: schema per file, then cross-references, graphs, bundles and rollouts.

    Example: `rspp validate pipelines/`. Prints every problem as
    `file:line: field.path: what is wrong (expected …)` and exits 1 if there is any.
    """
    artifacts, issues = validate_paths(paths)
    if not artifacts.loaded and not issues:  # a typo'd directory must not pass vacuously
        shown = ", ".join(str(p) for p in paths)
        raise NotFoundError(f"{shown}: no artifact files (*.yaml, *.yml, *.json) found")
    if json_out:
        emit_json({"ok": not issues, "artifacts": [{"file": str(a.path), "kind": a.model.kind, "ref": a.model.ref}
                                                    for a in artifacts.loaded],
                   "issues": [{"file": i.file, "line": i.line, "path": i.dotted, "message": i.message}
                              for i in issues]})
        if issues:
            raise typer.Exit(1)
        return
    if issues:
        raise _fail(issues)
    console.print(f"ok: {len(artifacts.loaded)} artifacts valid")


def compile_(
    *,
    spec: SpecOpt, profile: ProfileOpt, policy: PolicyOpt = None,
    module_dir: ModuleDirOpt = PIPELINES_DIR / "modules", extension: ExtensionOpt = None, json_out: JsonOpt = False,
) -> None:
    """Resolve spec + profile + policies + modules into the effective graph, showing each value's source.

    Sources, highest precedence first: `policy:<name>`, `spec` (or `module default`),
    `profile`, `simple/v1 default`. Example:
    `rspp compile --spec pipelines/specs/simple_v1.yaml --profile pipelines/profiles/simple_v1.yaml
    --policy pipelines/policies/default_voice_policy_v1.yaml`
    """
    artifacts, inp = _compile_inputs(spec, profile, policy, module_dir, extension)
    try:
        resolved = ScaffoldCompiler().normalize(inp.spec, inp.profile, inp.policies, modules=inp.modules,
                                                extensions=inp.extensions)
    except CompileError as exc:
        raise _fail(attribute(exc.issues, artifacts)) from None
    _print_resolved(resolved, json_out)


def _print_resolved(resolved: ResolvedSpec, json_out: bool) -> None:
    if json_out:
        emit_json(resolved.model_dump(mode="json"))
        return
    table = Table(title=f"resolved {resolved.resolved_spec_id}")
    table.add_column("field")
    table.add_column("value")
    table.add_column("source")
    for field, value, source in sourced_rows(resolved.model_dump(mode="json")):
        table.add_row(escape(field), escape(_short(value)), escape(source))
    console.print(table)


@bundle_app.command("build")
def bundle_build(
    *,
    spec: SpecOpt, profile: ProfileOpt,
    name: Annotated[str, typer.Option("--name", help="Bundle name, e.g. voice_assistant.")],
    version: Annotated[str, typer.Option("--version", help="Bundle semver; published versions never change.")],
    description: Annotated[str, typer.Option("--description", help="One line recorded in the bundle.")] = "",
    policy: PolicyOpt = None, module_dir: ModuleDirOpt = PIPELINES_DIR / "modules",
    extension: ExtensionOpt = None, store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the bundle JSON to this file.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Compile and freeze a PipelineBundle, publish it to the store, optionally write the JSON file.

    The digest is sha256 of the canonical JSON (sorted keys) of the bundle without its digest,
    so it is the same on every machine. Re-publishing name@version with other content fails.
    """
    if out is not None:
        _check_bundle_target(out)
    artifacts, inp = _compile_inputs(spec, profile, policy, module_dir, extension)
    try:
        bundle = build_bundle(BundleInput(**{**_fields(inp), "name": name, "version": version,
                                               "description": description}))
    except CompileError as exc:
        raise _fail(attribute(exc.issues, artifacts)) from None
    except ValueError as exc:  # bad name/version
        raise _fail([f"bundle: {' '.join(str(exc).split())}"]) from None
    target = ArtifactStore(store or default_store_root())
    stored = target.put_bundle(bundle)
    if out is not None:
        write_bundle(bundle, out)
    if json_out:
        emit_json({"bundle": bundle.ref, "digest": bundle.digest, "store": str(target.root),
                   "file": str(out) if out else None, "kind": stored.kind})
        return
    console.print(f"built {bundle.ref} {bundle.digest}")
    console.print(f"stored in {target.root}" + (f", written to {out}" if out else ""))


def _check_bundle_target(out: Path) -> None:
    """``--out`` may create a file or replace a bundle file, never overwrite anything else."""
    if out.is_dir():
        raise _fail([f"{out}: --out is a directory; name the bundle file to write"])
    if not out.exists():
        return
    try:
        with out.open("rb") as fh:
            existing = orjson.loads(fh.read(16 << 20))
    except OSError as exc:
        raise _fail([f"{out}: cannot read the existing file ({exc.strerror})"]) from None
    except orjson.JSONDecodeError:
        existing = None
    if not isinstance(existing, dict) or existing.get("kind") != "PipelineBundle":
        raise _fail([f"{out}: exists and is not a bundle file; refusing to overwrite it"])


def _fields(inp: BundleInput) -> dict[str, Any]:
    return {f: getattr(inp, f) for f in BundleInput.__dataclass_fields__}


def _bundle_from(target: str, store: Path | None) -> tuple[PipelineBundle, str]:
    path = Path(target)
    if path.exists():
        return read_bundle(path), str(path)
    return ArtifactStore(store or default_store_root()).get_bundle(target), target


@bundle_app.command("verify")
def bundle_verify(
    target: Annotated[str, typer.Argument(help="Bundle JSON file, or name@version / sha256:… in the store.")],
    store: StoreOpt = None,
    sources: Annotated[Path | None, typer.Option(
        "--sources", help="Also check the pins against the source artifacts in this directory.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-derive a bundle's digest and check its pins; any tampering fails with exit 1.

    A bundle whose name@version the store keeps under another digest fails too.
    """
    try:
        bundle, label = _bundle_from(target, store)
        verify_bundle(bundle, source=label)
        # A name@version the store keeps under another digest is a re-hash, not a release.
        ArtifactStore(store or default_store_root()).check_version(bundle)
    except (ArtifactValidationError, BundleTamperedError, ImmutableVersionError) as exc:
        issues = exc.issues if isinstance(exc, ArtifactValidationError) else [str(exc)]
        if json_out:
            emit_json({"ok": False, "issues": [str(i) for i in issues]})
            raise typer.Exit(1) from None
        raise _fail(issues) from None
    problems: list[Issue | str] = []
    if sources is not None:
        artifacts = _load([sources])
        skew = [p for p in artifacts.of(VersionSkewPolicy) if isinstance(p, VersionSkewPolicy)]
        problems += [f"{label}: {i.dotted}: {i.message}" for i in check_bundle(bundle, artifacts, skew)]
    if json_out:
        emit_json({"ok": not problems, "bundle": bundle.ref, "digest": bundle.digest,
                   "issues": [str(p) for p in problems]})
        if problems:
            raise typer.Exit(1)
        return
    if problems:
        raise _fail(problems)
    console.print(f"ok: {label}: {bundle.ref} {bundle.digest}")


@bundle_app.command("show")
def bundle_show(
    target: Annotated[str, typer.Argument(help="Bundle JSON file, or name@version / sha256:… in the store.")],
    store: StoreOpt = None, json_out: JsonOpt = False,
) -> None:
    """Show a bundle's pins, node package digests and resolved values with their sources."""
    bundle, _ = _bundle_from(target, store)
    if json_out:
        emit_json(bundle.model_dump(mode="json"))
        return
    pins = Table(title=f"{bundle.ref} {bundle.digest}")
    for col in ("pin", "ref", "digest"):
        pins.add_column(col)
    for label, ref in [("spec", bundle.spec_ref), ("profile", bundle.profile_ref),
                       *[("policy", r) for r in bundle.policy_refs], *[("module", r) for r in bundle.module_refs],
                       *[("extension", r) for r in bundle.extension_refs]]:
        pins.add_row(label, ref.ref, ref.digest)
    for pkg in bundle.node_digests:
        pins.add_row(f"node {pkg.execution_mode}", f"{pkg.node_type}@{pkg.version}", pkg.digest)
    pins.add_row("abi", bundle.compat_window.abi_version,
                 f"runtime {bundle.compat_window.runtime_abi_min} <= v < {bundle.compat_window.runtime_abi_max_exclusive}")
    console.print(pins)
    _print_resolved(bundle.resolved_spec, False)


@rollout_app.command("resolve")
def rollout_resolve(
    session: Annotated[str, typer.Option("--session", help="Session id.")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id.")],
    rollout: Annotated[Path, typer.Option("--rollout", help="RolloutManifest file.")] = PIPELINES_DIR / ROLLOUT_FILE,
    pins: Annotated[Path | None, typer.Option(
        "--pins", help="SessionPins JSON file: a session already pinned keeps its bundle.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Print the bundle a session gets and why (cohort hash bucket, stage, tenant rule, pin).

    The bucket is sha256(rollout name, tenant, session) mod 10000, so the answer is the
    same on every run and machine. Example: `rspp rollout resolve --session s-1 --tenant acme`.
    """
    artifacts = _load([rollout])
    manifest = _one(artifacts, rollout, RolloutManifest)
    resolver = RolloutResolver(manifest)
    assignment = (SessionPins(pins).assign(resolver, tenant=tenant, session_id=session) if pins
                  else resolver.assign(tenant=tenant, session_id=session))
    if json_out:
        from dataclasses import asdict

        emit_json(asdict(assignment))
        return
    why = "pinned earlier; keeps its bundle" if assignment.pinned else assignment.reason
    console.print(f"{assignment.bundle} {assignment.digest}")
    console.print(f"cohort {assignment.cohort} via {assignment.rollout} stage {assignment.stage}: {why}")


def register(app: typer.Typer) -> None:
    """Attach the pipeline commands to the root ``rspp`` app."""
    app.command("validate")(validate)
    app.command("compile")(compile_)
    app.add_typer(bundle_app, name="bundle")
    app.add_typer(rollout_app, name="rollout")


_ = PipelinesError  # errors not caught here reach streams.cli.main, which prints one line
