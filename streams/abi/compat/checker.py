"""Schema compatibility: the verdict of Avro's reader/writer rules, explained per field.

The verdict is ``avro.compatibility.ReaderWriterCompatibilityChecker``'s (the
reference implementation of the spec's resolution rules). Its report is a set of
JSON-pointer locations and loose messages, which a schema owner cannot act on,
so :func:`explain` walks reader and writer together, asks the oracle which
sub-pairs are incompatible, and names the field path and the rule broken in
terms of the change (old → new) rather than reader/writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import avro.schema
import orjson
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityType,
    lookup_writer_field,
    schema_name_equals,
)

from streams.abi.errors import SchemaError

__all__ = [
    "CompatMode",
    "Direction",
    "Incompatibility",
    "Previous",
    "check_against",
    "explain",
    "is_compatible",
    "root_label",
    "to_avro",
]

Json = Any
UNCLASSIFIED = "incompatible under the Avro resolution rules"


class CompatMode(StrEnum):
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))


class Direction(StrEnum):
    """Who must read whom: BACKWARD = the new schema reads old data."""

    BACKWARD = "new schema reads data written with the old one"
    FORWARD = "old schema reads data written with the new one"
    REMOVED = "no schema in the new set reads data written with it"


@dataclass(frozen=True, slots=True)
class Previous:
    """An older version to check against; ``label`` names it in reports."""

    label: str
    schema: Json


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One broken rule: where (field path), what (rule), which older version, which way."""

    path: str
    rule: str
    detail: str
    against: str
    direction: Direction
    location: str

    def line(self) -> str:
        return f"{self.path}: {self.rule} ({self.detail}); breaks {self.against}: {self.direction.value}"


def _qualified_aliases(node: Json, namespace: str | None) -> Json:
    # Avro resolves a named type's short alias in that type's namespace (Java's parser does);
    # the Python oracle compares aliases as written, so they are qualified first.
    if isinstance(node, list):
        return [_qualified_aliases(branch, namespace) for branch in node]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    kind = node.get("type")
    if kind in ("record", "error", "enum", "fixed") and isinstance(node.get("name"), str):
        name = str(node["name"])
        space = name.rpartition(".")[0] if "." in name else node.get("namespace", namespace)
        space = space if isinstance(space, str) and space else None
        aliases = node.get("aliases")
        if isinstance(aliases, list) and space:
            out["aliases"] = [
                f"{space}.{a}" if isinstance(a, str) and "." not in a else a for a in aliases
            ]
        if isinstance(node.get("fields"), list):
            out["fields"] = [
                {**f, "type": _qualified_aliases(f.get("type"), space)} if isinstance(f, dict) else f
                for f in node["fields"]
            ]
        return out
    for key in ("items", "values"):
        if key in node:
            out[key] = _qualified_aliases(node[key], namespace)
    if isinstance(kind, (dict, list)):
        out["type"] = _qualified_aliases(kind, namespace)
    return out


def to_avro(schema: Json) -> avro.schema.Schema:
    """The ``avro`` package's parsed schema (what the oracle works on)."""
    try:
        return avro.schema.parse(orjson.dumps(_qualified_aliases(schema, None)).decode())
    except Exception as exc:
        raise SchemaError(f"invalid schema for the compatibility check: {exc}") from None


def _new_checker() -> Any:
    # A fresh checker per question: its memo is only valid within one comparison.
    return ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]


def _oracle(checker: Any, reader: Any, writer: Any) -> Any:
    return checker.get_compatibility(reader, writer)


def is_compatible(reader: avro.schema.Schema, writer: avro.schema.Schema) -> bool:
    """The reference verdict: can ``reader`` read everything ``writer`` writes?"""
    result = _new_checker().get_compatibility(reader, writer)
    return bool(result.compatibility is SchemaCompatibilityType.compatible)


def _describe(schema: Any) -> str:
    kind = str(schema.type)
    if kind in ("record", "error", "enum", "fixed"):
        return f"{kind} {schema.fullname}"
    if kind == "array":
        return f"array<{_describe(schema.items)}>"
    if kind == "map":
        return f"map<{_describe(schema.values)}>"
    if kind == "union":
        return "union[" + ", ".join(_describe(b) for b in schema.schemas) + "]"
    logical = schema.props.get("logicalType")
    return f"{kind}({logical})" if logical else kind


def _branch_label(schema: Any) -> str:
    return (
        str(schema.name)
        if str(schema.type) in ("record", "error", "enum", "fixed")
        else str(schema.type)
    )


def _same_kind(a: Any, b: Any) -> bool:
    if a.type != b.type:
        return False
    if str(a.type) in ("record", "error", "enum", "fixed"):
        return bool(schema_name_equals(a, b))
    return True


class _Walker:
    def __init__(self, backward: bool) -> None:
        self.backward = backward
        self.checker = _new_checker()
        self.seen: set[tuple[int, int]] = set()
        self.found: list[tuple[str, str, str]] = []  # (path, rule, detail)

    def ok(self, reader: Any, writer: Any) -> bool:
        result = _oracle(self.checker, reader, writer)
        return result.compatibility is not SchemaCompatibilityType.incompatible

    def old_new(self, reader: Any, writer: Any) -> tuple[Any, Any]:
        return (writer, reader) if self.backward else (reader, writer)

    def add(self, path: str, rule: str, detail: str) -> None:
        self.found.append((path, rule, detail))

    def type_changed(self, path: str, reader: Any, writer: Any) -> None:
        old, new = self.old_new(reader, writer)
        self.add(
            path,
            f"type changed {_describe(old)}→{_describe(new)}",
            "no Avro promotion between them",
        )

    def walk(self, reader: Any, writer: Any, path: str) -> None:
        key = (id(reader), id(writer))
        if key in self.seen or self.ok(reader, writer):
            return
        self.seen.add(key)
        kind = str(reader.type)
        if reader.type == writer.type:
            if kind in ("record", "error", "enum", "fixed") and not schema_name_equals(
                reader, writer
            ):
                old, new = self.old_new(reader, writer)
                self.add(
                    path,
                    f"{kind} renamed {old.fullname}→{new.fullname} without an alias",
                    "names must match",
                )
            if kind in ("record", "error"):
                self.walk_record(reader, writer, path)
            elif kind == "enum":
                missing = sorted(set(writer.symbols) - set(reader.symbols))
                default = reader.props.get("default")
                if missing and not (default and default in reader.symbols):
                    rule = "enum symbol removed" if self.backward else "enum symbol added"
                    self.add(
                        path, rule, f"symbols {', '.join(missing)}; the reading enum has no default"
                    )
            elif kind == "fixed" and reader.size != writer.size:
                old, new = self.old_new(reader, writer)
                self.add(path, f"fixed size changed {old.size}→{new.size}", "sizes must match")
            elif kind == "array":
                self.walk(reader.items, writer.items, f"{path}[]")
            elif kind == "map":
                self.walk(reader.values, writer.values, f"{path}{{}}")
            elif kind == "union":
                for branch in writer.schemas:
                    self.walk_into_union(reader, branch, path)
            return
        if str(writer.type) == "union":
            for branch in writer.schemas:
                if str(reader.type) == "union":
                    self.walk_into_union(reader, branch, path)
                elif not self.ok(reader, branch):
                    if _same_kind(reader, branch):
                        self.walk(reader, branch, f"{path}<{_branch_label(branch)}>")
                    else:
                        self.type_changed(path, reader, branch)
            return
        if kind == "union":
            self.walk_into_union(reader, writer, path)
            return
        self.type_changed(path, reader, writer)

    def walk_into_union(self, reader_union: Any, writer_branch: Any, path: str) -> None:
        """``writer_branch`` must be readable by some branch of ``reader_union``."""
        if self.ok(reader_union, writer_branch):
            return
        label = f"{path}<{_branch_label(writer_branch)}>"
        for branch in reader_union.schemas:
            if _same_kind(branch, writer_branch):
                self.walk(branch, writer_branch, label)
                return
        rule = "union branch removed" if self.backward else "union branch added"
        self.add(label, rule, f"branch {_describe(writer_branch)} has no readable counterpart")

    def walk_record(self, reader: Any, writer: Any, path: str) -> None:
        for field in reader.fields:
            field_path = f"{path}.{field.name}"
            writer_field = lookup_writer_field(writer_schema=writer, reader_field=field)
            if writer_field is None:
                if not field.has_default:
                    rule = (
                        "field added without default"
                        if self.backward
                        else "field removed without default"
                    )
                    self.add(
                        field_path,
                        rule,
                        f"the reader needs {field.name} and the writer has no such field",
                    )
            else:
                self.walk(field.type, writer_field.type, field_path)


def root_label(schema: Any, subject: str | None = None) -> str:
    """How paths start: a named type's short name, else the subject (or the type)."""
    if str(schema.type) in ("record", "error", "enum", "fixed"):
        return str(schema.name)
    return subject if subject else str(schema.type)


def explain(
    reader: avro.schema.Schema,
    writer: avro.schema.Schema,
    *,
    backward: bool,
    root: str | None = None,
) -> list[tuple[str, str, str]]:
    """``(path, rule, detail)`` for each incompatibility of reader vs writer; empty iff compatible.

    ``backward`` says the reader is the new schema (so a missing reader field
    was *added*); otherwise the reader is the old one. ``root`` starts each path.
    """
    walker = _Walker(backward)
    root = root or root_label(reader)
    walker.walk(reader, writer, root)
    if not walker.found and not is_compatible(reader, writer):
        result = _new_checker().get_compatibility(reader, writer)
        walker.add(root, UNCLASSIFIED, "; ".join(sorted(result.messages)))
    return walker.found


def _oracle_location(reader: Any, writer: Any) -> str:
    result = _new_checker().get_compatibility(reader, writer)
    return ",".join(sorted(result.locations))


def check_against(
    new: Json, previous: Sequence[Previous], mode: CompatMode, *, subject: str | None = None
) -> list[Incompatibility]:
    """Every incompatibility of ``new`` against ``previous`` (oldest first) under ``mode``.

    This is the one verdict engine: every source (directory, git ref, registry)
    hands its versions here. ``subject`` names an unnamed schema in paths.
    """
    if mode is CompatMode.NONE or not previous:
        return []
    try:
        return _check(new, previous, mode, subject)
    except RecursionError:
        raise SchemaError(f"{subject or 'schema'}: nested too deeply to check") from None
    except SchemaError as exc:
        raise SchemaError(f"{subject}: {exc}" if subject else str(exc)) from None


def _check(
    new: Json, previous: Sequence[Previous], mode: CompatMode, subject: str | None
) -> list[Incompatibility]:
    targets = previous if mode.transitive else previous[-1:]
    new_schema = to_avro(new)
    root = root_label(new_schema, subject)
    out: list[Incompatibility] = []
    for older in targets:
        old_schema = to_avro(older.schema)
        pairs: list[tuple[Direction, Any, Any, bool]] = []
        if mode.backward:
            pairs.append((Direction.BACKWARD, new_schema, old_schema, True))
        if mode.forward:
            pairs.append((Direction.FORWARD, old_schema, new_schema, False))
        for direction, reader, writer, backward in pairs:
            found = explain(reader, writer, backward=backward, root=root)
            if not found:
                continue
            location = _oracle_location(reader, writer)
            out.extend(
                Incompatibility(
                    path=path,
                    rule=rule,
                    detail=detail,
                    against=older.label,
                    direction=direction,
                    location=location,
                )
                for path, rule, detail in found
            )
    return out
