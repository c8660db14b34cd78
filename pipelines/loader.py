"""Safe loading of artifact files into models, with every problem as an :class:`Issue`.

YAML is composed into nodes (no object construction, so no arbitrary tags run)
and walked by hand: that keeps line numbers for every path, rejects duplicate
keys, merge keys and unknown tags, and bounds alias expansion so an alias bomb
fails fast. Files over :data:`MAX_FILE_BYTES` are refused before parsing.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ValidationError

from pipelines.errors import Issue
from pipelines.models import KINDS, ArtifactBase

__all__ = [
    "ARTIFACT_SUFFIXES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "LoadedArtifact",
    "Positions",
    "iter_artifact_files",
    "load_artifact",
    "load_paths",
    "parse_text",
    "validation_issues",
]

MAX_FILE_BYTES = 1 << 20
MAX_NODES = 50_000  # after alias expansion
MAX_DEPTH = 64
ARTIFACT_SUFFIXES = (".yaml", ".yml", ".json")

Loc = tuple[str | int, ...]
Positions = dict[Loc, int]

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _WalkError(Exception):
    def __init__(self, loc: Loc, line: int | None, message: str) -> None:
        super().__init__(message)
        self.loc, self.line, self.message = loc, line, message


class _Walker:
    """Turns a composed YAML node tree into plain values and a loc -> line map."""

    def __init__(self) -> None:
        self.positions: Positions = {}
        self.count = 0
        self._constructor = yaml.SafeLoader("")

    def walk(self, node: yaml.Node, loc: Loc, stack: tuple[int, ...]) -> Any:
        line = node.start_mark.line + 1
        self.count += 1
        if self.count > MAX_NODES:
            raise _WalkError(loc, line, f"document expands to more than {MAX_NODES} nodes (alias bomb?)")
        if id(node) in stack:
            raise _WalkError(loc, line, "recursive alias (expected a tree)")
        if len(stack) > MAX_DEPTH:
            raise _WalkError(loc, line, f"nesting deeper than {MAX_DEPTH} levels")
        self.positions.setdefault(loc, line)
        inner = (*stack, id(node))
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _TIMESTAMP:
                return node.value  # dates stay strings; models check their format
            if node.tag not in _SCALAR_TAGS:
                raise _WalkError(loc, line, f"unsupported YAML tag {node.tag!r} (expected plain YAML)")
            return self._constructor.construct_object(node)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise _WalkError(loc, line, f"unsupported YAML tag {node.tag!r} (expected plain YAML)")
            return [self.walk(item, (*loc, i), inner) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                raise _WalkError(loc, line, f"unsupported YAML tag {node.tag!r} (expected plain YAML)")
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        raise _WalkError(loc, key_line, "merge keys ('<<') are not supported (expected explicit fields)")
                    raise _WalkError(loc, key_line, "mapping key must be a string")
                key = key_node.value
                if key in out:
                    raise _WalkError((*loc, key), key_line, f"duplicate key {key!r}")
                self.positions[(*loc, key)] = key_line
                out[key] = self.walk(value_node, (*loc, key), inner)
            return out
        raise _WalkError(loc, line, "unsupported YAML node")


def parse_text(text: str, *, file: str, json: bool) -> tuple[Any, Positions, list[Issue]]:
    """Parse YAML or JSON text into plain values; never raises for bad input."""
    if json:
        try:
            return orjson.loads(text), {}, []
        except orjson.JSONDecodeError as exc:
            return None, {}, [Issue(file, (), f"invalid JSON: {exc} (expected a JSON object)")]
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(str(exc.problem or exc).split())
        return None, {}, [Issue(file, (), f"invalid YAML: {what}", line)]
    except yaml.YAMLError as exc:
        return None, {}, [Issue(file, (), f"invalid YAML: {' '.join(str(exc).split())}")]
    except RecursionError:
        # PyYAML's composer recurses once per nesting level: "[[[[…" thousands deep
        # exhausts the interpreter stack before the walker's depth limit can refuse it.
        return None, {}, [Issue(file, (), f"invalid YAML: nesting deeper than {MAX_DEPTH} levels")]
    if node is None:
        return None, {}, [Issue(file, (), "empty document (expected an artifact with apiVersion and kind)")]
    walker = _Walker()
    try:
        return walker.walk(node, (), ()), walker.positions, []
    except _WalkError as problem:
        return None, {}, [Issue(file, problem.loc, problem.message, problem.line)]


def line_for(positions: Positions, loc: Loc) -> int | None:
    """Line of the deepest known prefix of ``loc`` (a missing field points at its parent)."""
    for end in range(len(loc), -1, -1):
        line = positions.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_fields(model: type[BaseModel], loc: Loc) -> list[str] | None:
    """Field names allowed at ``loc`` (for 'unknown field' hints), when the path is simple."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a sequence of models: same model
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _model_in(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return None


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validation_issues(
    exc: ValidationError, *, file: str, positions: Positions, model: type[BaseModel], prefix: Loc = ()
) -> list[Issue]:
    """Translate pydantic errors into ``what is wrong (expected …)`` issues."""
    issues: list[Issue] = []
    errors = exc.errors(include_url=False)
    failed = [tuple(e["loc"]) for e in errors if e["type"] != "too_short"]
    for err in errors:
        loc: Loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if err["type"] == "too_short" and any(f[: len(loc)] == loc and len(f) > len(loc) for f in failed):
            continue  # an item failed and was dropped; its own error says why
        kind, msg, given = err["type"], err["msg"], err.get("input")
        if kind == "missing":
            message = "missing required field"
        elif kind == "extra_forbidden":
            allowed = _allowed_fields(model, loc[:-1])
            hint = f" (expected one of: {', '.join(allowed)})" if allowed else " (expected no such field)"
            message = "unknown field" + hint
        elif msg.startswith("Input should be "):
            message = f"got {_short(given)} (expected {msg[len('Input should be '):]})"
        elif kind == "string_pattern_mismatch":
            pattern = (err.get("ctx") or {}).get("pattern", "")
            message = f"got {_short(given)} (expected to match {pattern})"
        elif kind == "too_short":
            ctx = err.get("ctx") or {}
            message = f"needs at least {ctx.get('min_length', 1)} item(s) (got {ctx.get('actual_length', 0)})"
        elif kind == "value_error":
            message = msg.removeprefix("Value error, ")
        else:
            message = f"{msg[:1].lower()}{msg[1:]} (got {_short(given)})"
        full = (*prefix, *loc)
        issues.append(Issue(file, full, message, line_for(positions, full)))
    return issues


@dataclass(frozen=True, slots=True)
class LoadedArtifact:
    """One artifact file, parsed and validated, with the line of every path."""

    path: Path
    model: ArtifactBase
    positions: Positions = field(default_factory=dict)


def load_artifact(path: Path, *, display: str | None = None) -> tuple[LoadedArtifact | None, list[Issue]]:
    """Load and schema-validate one file. Returns the artifact or the issues, never raises."""
    file = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, [Issue(file, (), f"file is {size} bytes (expected at most {MAX_FILE_BYTES})")]
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return None, [Issue(file, (), "not UTF-8 text (expected a YAML or JSON artifact)")]
    except OSError as exc:
        return None, [Issue(file, (), f"cannot read: {exc.strerror or exc}")]
    data, positions, issues = parse_text(text, file=file, json=path.suffix == ".json")
    if issues:
        return None, issues
    if not isinstance(data, dict):
        return None, [Issue(file, (), f"top level is {type(data).__name__} (expected a mapping with apiVersion and kind)")]
    kind = data.get("kind")
    model_cls = KINDS.get(kind) if isinstance(kind, str) else None
    if model_cls is None:
        return None, [Issue(file, ("kind",), f"got {_short(kind)} (expected one of: {', '.join(sorted(KINDS))})",
                            line_for(positions, ("kind",)))]
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        return None, validation_issues(exc, file=file, positions=positions, model=model_cls)
    return LoadedArtifact(path=path, model=model, positions=positions), []


def iter_artifact_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Artifact files under ``paths`` (directories recursively, sorted; READMEs skipped)."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix in ARTIFACT_SUFFIXES and not child.name.startswith("."):
                    yield child
        else:
            yield path


def load_paths(paths: Iterable[Path]) -> tuple[list[LoadedArtifact], list[Issue]]:
    """Load every artifact under ``paths``; collects all issues of all files."""
    loaded: list[LoadedArtifact] = []
    issues: list[Issue] = []
    for file in iter_artifact_files(paths):
        if not file.exists():
            issues.append(Issue(str(file), (), "no such file or directory"))
            continue
        artifact, problems = load_artifact(file)
        issues.extend(problems)
        if artifact is not None:
            loaded.append(artifact)
    return loaded, issues
