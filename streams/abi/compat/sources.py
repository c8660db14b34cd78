"""Where schemas come from: the new set under check, and the previous versions.

Previous versions are read from a directory, a git ref (``git:REF`` — the files
at that ref, via ``git show``), or a registry (``registry`` = the default
registry, ``registry:URL`` = a Confluent Schema Registry). A directory or ref
contributes every version it keeps (see :mod:`streams.abi.compat.layout`) and
the history in its ``registry.json``, so transitive modes see every released
version, not only the last one.
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
from streams.abi.compat.layout import Snapshot, is_schema_path, snapshots
from streams.abi.errors import CompatSourceError, RegistryError, SchemaError
from streams.abi.registry import REGISTRY_FILE, ConfluentRegistry, SchemaRegistry, default_registry
from streams.abi.schemas import SchemaSet, avro_dir
from streams.config import repo_root

__all__ = [
    "DEFAULT_MODE",
    "POLICY_FILE",
    "NewSchemas",
    "PreviousVersions",
    "mode_for",
    "new_schema_set",
    "open_source",
    "own_history",
]

DEFAULT_MODE = CompatMode.BACKWARD_TRANSITIVE
_REGISTRY_SCHEMES = ("http://", "https://", "mock://")
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


@dataclass(frozen=True, slots=True)
class NewSchemas:
    """The schemas under check.

    ``schemas`` is the newest version; ``history`` the older versions kept in
    the same directory (see :mod:`streams.abi.compat.layout`). For a single
    file, ``file_name`` is its name and ``changed`` the names it defines, and
    ``home`` the directory whose previous versions it is compared with.
    """

    schemas: SchemaSet
    home: Path
    history: tuple[Snapshot, ...] = ()
    file_name: str | None = None
    changed: frozenset[str] = frozenset()


def _read_dir(directory: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    try:
        # Only the two levels the layout uses: never walk a large tree given by mistake.
        found = [*directory.glob("*.avsc"), *directory.glob("v*/*.avsc")]
        for path in sorted(found):
            rel = path.relative_to(directory).as_posix()
            if is_schema_path(rel):
                files[rel] = path.read_bytes()
    except OSError as exc:
        raise CompatSourceError(f"{directory}: unreadable: {exc.strerror or exc}") from None
    return files


def _dir_snapshots(directory: Path, label: str) -> list[Snapshot]:
    if not directory.is_dir():
        raise CompatSourceError(f"{directory}: not a schema directory")
    return snapshots(_read_dir(directory), source=label)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CompatSourceError(f"{path}: unreadable: {exc.strerror or exc}") from None


def new_schema_set(target: Path | None) -> NewSchemas:
    """The schemas under check: a directory (with its own history) or one ``.avsc``.

    A single file stands alone when it is self-contained. One that refers to
    types it does not define (or lives in ``avro/``) is overlaid on ``avro/``,
    replacing the file that defines the same type, so subjects that embed it
    are composed with the new version.
    """
    if target is None or target.is_dir():
        directory = target if target is not None else avro_dir()
        versions = _dir_snapshots(directory, str(directory))
        return NewSchemas(
            schemas=versions[-1].schemas, home=directory, history=tuple(versions[:-1])
        )
    if not target.is_file():
        raise CompatSourceError(f"{target}: no such schema file or directory")
    raw = _read_file(target)
    single = SchemaSet.from_texts({target.name: raw}, source=str(target.parent))
    changed = frozenset((*single.definitions, *single.unnamed))
    base = avro_dir()
    standalone = _standalone_error(single)
    if target.parent.resolve() != base.resolve() and standalone is None:
        return NewSchemas(schemas=single, home=target.parent, file_name=target.name, changed=changed)
    try:
        schemas = _overlay(base, target.name, raw, single)
    except SchemaError:
        # Not an edit of an avro/ type after all: report what is wrong with the file itself.
        if standalone is not None:
            raise standalone from None
        raise
    return NewSchemas(schemas=schemas, home=base, file_name=target.name, changed=changed)


def _overlay(base: Path, name: str, raw: bytes, single: SchemaSet) -> SchemaSet:
    texts: dict[str, str | bytes] = dict(_read_dir(base)) if base.is_dir() else {}
    texts = {k: v for k, v in texts.items() if "/" not in k}
    base_set = SchemaSet.from_texts(texts, source=str(base))
    for defined in single.definitions:
        texts.pop(base_set.origins.get(defined, ""), None)
    texts[name] = raw
    schemas = SchemaSet.from_texts(texts, source=str(base))
    for subject in schemas.subjects():
        schemas.compose(subject)
    return schemas


def _standalone_error(schemas: SchemaSet) -> SchemaError | None:
    """Why a single file cannot be checked on its own (None if it can)."""
    try:
        for subject in schemas.subjects():
            schemas.compose(subject)
    except SchemaError as exc:
        return exc
    return None


@dataclass(frozen=True, slots=True)
class PreviousVersions:
    """Previous versions per subject from one source (oldest first)."""

    label: str
    versions: tuple[Snapshot, ...] = ()
    history: Mapping[str, list[Previous]] = field(default_factory=dict)
    registry: SchemaRegistry | None = None

    def subjects(self) -> frozenset[str]:
        """Every subject this source has a version of."""
        found: set[str] = set(self.history)
        for snapshot in self.versions:
            found.update(snapshot.schemas.subjects())
        if self.registry is not None:
            found.update(self.registry.subjects())
        return frozenset(found)

    def origin(self, subject: str) -> str | None:
        """The file that defined ``subject`` in its newest version here (None for a registry)."""
        for snapshot in reversed(self.versions):
            if subject in snapshot.schemas.subjects():
                return snapshot.schemas.origins.get(subject)
        return None

    def for_subject(self, subject: str) -> list[Previous]:
        versions: list[Previous] = []
        if self.registry is not None:
            versions = [
                Previous(label=v.label, schema=v.schema) for v in self.registry.versions(subject)
            ]
        versions.extend(self.history.get(subject, ()))
        for snapshot in self.versions:
            if subject in snapshot.schemas.subjects():
                tag = "" if snapshot.label == "current" else f" {snapshot.label}"
                label = f"{subject}{tag} at {self.label}"
                versions.append(Previous(label=label, schema=snapshot.schemas.compose(subject)))
        return _dedupe(versions)


def _dedupe(versions: list[Previous]) -> list[Previous]:
    # The same schema under two labels (registry.json and the .avsc at a ref) counts once.
    # The last occurrence is kept, so the newest version stays last (what BACKWARD checks).
    # The key is the whole JSON, not the canonical form: that drops defaults, which decide
    # compatibility (two versions differing only in a default are both checked).
    seen: set[bytes] = set()
    out: list[Previous] = []
    for v in reversed(versions):
        key = orjson.dumps(v.schema, option=orjson.OPT_SORT_KEYS)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out[::-1]


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


def _parse_history(raw: bytes, where: str, label: str) -> dict[str, list[Previous]]:
    try:
        return _history(orjson.loads(raw), label)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CompatSourceError(f"{where}: unreadable registry: {exc}") from None


def _from_dir(path: Path) -> PreviousVersions:
    label = f"dir:{path}"
    files = _read_dir(path)
    registry = path / REGISTRY_FILE
    history = (
        _parse_history(_read_file(registry), str(registry), label) if registry.exists() else {}
    )
    if not files and not history:
        raise CompatSourceError(f"--against {path}: no .avsc files and no {REGISTRY_FILE}")
    versions = snapshots(files, source=label) if files else []
    return PreviousVersions(label=label, versions=tuple(versions), history=history)


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompatSourceError(f"git {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip() or "failed"
        raise CompatSourceError(f"git {' '.join(args)}: {reason}")
    return done.stdout


def _git_text(args: list[str], cwd: Path) -> str:
    return _git(args, cwd).decode("utf-8", "replace")


def _from_git(ref: str, schema_dir: Path) -> PreviousVersions:
    label = f"git:{ref}"
    directory = schema_dir.resolve()
    if not directory.is_dir():
        raise CompatSourceError(f"{schema_dir}: not a directory")
    top = Path(_git_text(["rev-parse", "--show-toplevel"], directory).strip())
    rel = directory.relative_to(top).as_posix()
    prefix = "" if rel == "." else f"{rel}/"
    _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top)
    listing = _git_text(["ls-tree", "-r", "--name-only", ref, "--", prefix or "."], top)
    names = [n for n in listing.splitlines() if n.startswith(prefix)]
    files = {
        n.removeprefix(prefix): _git(["show", f"{ref}:{n}"], top)
        for n in names
        if is_schema_path(n.removeprefix(prefix))
    }
    history: dict[str, list[Previous]] = {}
    if f"{prefix}{REGISTRY_FILE}" in names:
        raw = _git(["show", f"{ref}:{prefix}{REGISTRY_FILE}"], top)
        history = _parse_history(raw, f"{label}:{prefix}{REGISTRY_FILE}", label)
    try:
        versions = snapshots(files, source=f"{label}:{rel}") if files else []
    except SchemaError as exc:
        raise CompatSourceError(str(exc)) from None
    return PreviousVersions(label=label, versions=tuple(versions), history=history)


def own_history(new: NewSchemas) -> PreviousVersions:
    """The older versions kept beside the newest in the target directory."""
    return PreviousVersions(label=f"dir:{new.home}", versions=new.history)


def open_source(spec: str | None, *, schema_dir: Path | None = None) -> PreviousVersions:
    """Resolve ``--against``: ``git:REF``, ``registry``, ``registry:URL`` or a directory."""
    directory = schema_dir if schema_dir is not None else avro_dir()
    if spec is None or spec == "registry":
        try:
            return PreviousVersions(label="registry", registry=default_registry())
        except RegistryError as exc:
            raise CompatSourceError(str(exc)) from None
    if spec.startswith("registry:"):
        url = spec.removeprefix("registry:")
        if not url.startswith(_REGISTRY_SCHEMES):
            raise CompatSourceError(
                f"--against {spec}: a registry URL starts with http://, https:// or mock://"
            )
        try:
            return PreviousVersions(label=f"registry {url}", registry=ConfluentRegistry(url))
        except RegistryError as exc:
            raise CompatSourceError(str(exc)) from None
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
