"""Where schemas come from: the new set under check, and the previous versions.

Previous versions are read from a directory, a git ref (``git:REF`` — the files
at that ref, via ``git show``), or a registry (``registry`` = the default
registry, ``registry:URL`` = a Confluent Schema Registry). A directory or ref
also contributes the history in its ``registry.json``, so transitive modes see
every released version, not only the last one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from streams.abi.compat.checker import CompatMode, Previous
from streams.abi.errors import CompatSourceError, SchemaError
from streams.abi.registry import REGISTRY_FILE, ConfluentRegistry, SchemaRegistry, default_registry
from streams.abi.schemas import SchemaSet, avro_dir, fingerprint, load_schema_dir
from streams.config import repo_root

__all__ = [
    "DEFAULT_MODE",
    "POLICY_FILE",
    "PreviousVersions",
    "mode_for",
    "new_schema_set",
    "open_source",
]

DEFAULT_MODE = CompatMode.BACKWARD_TRANSITIVE
POLICY_FILE = Path("pipelines") / "compat" / "version_skew_policy_v1.yaml"


def mode_for(subject: str, policy_file: Path | None = None) -> CompatMode:
    """The subject's mode from the version-skew policy; BACKWARD_TRANSITIVE if unset."""
    path = policy_file if policy_file is not None else repo_root() / POLICY_FILE
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return DEFAULT_MODE
    section = document.get("schema_compatibility") if isinstance(document, dict) else None
    if not isinstance(section, dict):
        return DEFAULT_MODE
    subjects = section.get("subjects") or {}
    raw = subjects.get(subject) if isinstance(subjects, dict) else None
    raw = raw or section.get("default") or DEFAULT_MODE.value
    try:
        return CompatMode(str(raw).upper())
    except ValueError:
        raise CompatSourceError(
            f"{path}: schema_compatibility mode {raw!r} for {subject} is not a mode"
        ) from None


def new_schema_set(target: Path | None) -> tuple[SchemaSet, frozenset[str] | None]:
    """The schemas under check and, for a single file, the names it defines.

    A single ``.avsc`` is overlaid on ``avro/`` (replacing the file that defines
    the same type), so subjects that embed it are composed with the new version.
    """
    if target is None or target.is_dir():
        return load_schema_dir(target), None
    if not target.is_file():
        raise CompatSourceError(f"{target}: no such schema file or directory")
    single = SchemaSet.from_texts(
        {target.name: target.read_text(encoding="utf-8")}, source=str(target.parent)
    )
    base = avro_dir() if target.parent.resolve() != avro_dir().resolve() else target.parent
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(base.glob("*.avsc"))}
    base_set = SchemaSet.from_texts(texts, source=str(base))
    for name in single.definitions:
        texts.pop(base_set.origins.get(name, ""), None)
    texts[target.name] = target.read_text(encoding="utf-8")
    return SchemaSet.from_texts(texts, source=str(base)), frozenset(single.definitions)


@dataclass(frozen=True, slots=True)
class PreviousVersions:
    """Previous versions per subject from one source (oldest first)."""

    label: str
    schemas: SchemaSet | None = None
    history: Mapping[str, list[Previous]] = field(default_factory=dict)
    registry: SchemaRegistry | None = None

    def for_subject(self, subject: str) -> list[Previous]:
        versions: list[Previous] = []
        if self.registry is not None:
            versions = [
                Previous(label=v.label, schema=v.schema) for v in self.registry.versions(subject)
            ]
        versions.extend(self.history.get(subject, ()))
        if self.schemas is not None and subject in self.schemas.definitions:
            versions.append(
                Previous(label=f"{subject} at {self.label}", schema=self.schemas.compose(subject))
            )
        return _dedupe(versions)


def _dedupe(versions: list[Previous]) -> list[Previous]:
    # Same schema under two labels (registry.json and the .avsc at a ref) counts once; keep order.
    seen: set[str] = set()
    out: list[Previous] = []
    for v in versions:
        key = fingerprint(v.schema)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _history(document: Any, label: str) -> dict[str, list[Previous]]:
    history: dict[str, list[Previous]] = {}
    for subject, entries in (document.get("subjects") or {}).items():
        history[subject] = [
            Previous(
                label=f"{subject} v{e['version']} (id {e['id']}) at {label}", schema=e["schema"]
            )
            for e in sorted(entries, key=lambda e: int(e["version"]))
        ]
    return history


def _from_dir(path: Path) -> PreviousVersions:
    label = f"dir:{path}"
    schemas = load_schema_dir(path) if any(path.glob("*.avsc")) else None
    history: dict[str, list[Previous]] = {}
    registry = path / REGISTRY_FILE
    if registry.exists():
        try:
            history = _history(orjson.loads(registry.read_bytes()), label)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise CompatSourceError(f"{registry}: unreadable registry: {exc}") from None
    return PreviousVersions(label=label, schemas=schemas, history=history)


def _git(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompatSourceError(f"git {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        raise CompatSourceError(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'}")
    return done.stdout


def _from_git(ref: str, schema_dir: Path) -> PreviousVersions:
    label = f"git:{ref}"
    directory = schema_dir.resolve()
    top = Path(_git(["rev-parse", "--show-toplevel"], directory).strip())
    rel = directory.relative_to(top).as_posix()
    _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top)
    names = [n for n in _git(["ls-tree", "--name-only", ref, f"{rel}/"], top).splitlines() if n]
    texts = {Path(n).name: _git(["show", f"{ref}:{n}"], top) for n in names if n.endswith(".avsc")}
    history: dict[str, list[Previous]] = {}
    if f"{rel}/{REGISTRY_FILE}" in names:
        raw = _git(["show", f"{ref}:{rel}/{REGISTRY_FILE}"], top)
        try:
            history = _history(orjson.loads(raw), label)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise CompatSourceError(
                f"{label}:{rel}/{REGISTRY_FILE}: unreadable registry: {exc}"
            ) from None
    try:
        schemas = SchemaSet.from_texts(texts, source=f"{label}:{rel}") if texts else None
    except SchemaError as exc:
        raise CompatSourceError(str(exc)) from None
    return PreviousVersions(label=label, schemas=schemas, history=history)


def open_source(spec: str | None, *, schema_dir: Path | None = None) -> PreviousVersions:
    """Resolve ``--against``: ``git:REF``, ``registry``, ``registry:URL`` or a directory."""
    directory = schema_dir if schema_dir is not None else avro_dir()
    if spec is None or spec == "registry":
        return PreviousVersions(label="registry", registry=default_registry())
    if spec.startswith("registry:"):
        url = spec.removeprefix("registry:")
        return PreviousVersions(label=f"registry {url}", registry=ConfluentRegistry(url))
    if spec.startswith("git:"):
        ref = spec.removeprefix("git:")
        if not ref:
            raise CompatSourceError("--against git:REF needs a ref, e.g. git:main")
        return _from_git(ref, directory)
    path = Path(spec)
    if not path.is_dir():
        raise CompatSourceError(
            f"--against {spec}: not a directory, git:REF, registry or registry:URL"
        )
    return _from_dir(path)
