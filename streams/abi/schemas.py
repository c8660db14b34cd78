"""The ``.avsc`` files under ``avro/``: loading, composing and fingerprinting.

Each named type lives in its own file (``<namespace>.<Name>.avsc``) so it can be
reviewed and evolved on its own. Kafka tooling and registries want one
self-contained schema per subject, so :meth:`SchemaSet.compose` inlines each
named type at its first use and refers to it by name afterwards (the Avro rule
that a name is defined once). Parsing and canonical forms are fastavro's.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from streams.abi.errors import SchemaError
from streams.config import repo_root

__all__ = [
    "ENVELOPE",
    "NAMESPACE",
    "SchemaSet",
    "avro_dir",
    "file_stem",
    "fingerprint",
    "load_schema_dir",
    "parse",
    "schema_id_for",
]

NAMESPACE = "rspp.events"
ENVELOPE = f"{NAMESPACE}.Envelope"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})

Json = Any
_VERSION_SUFFIX = re.compile(r"\.v[0-9]+$")


class _MalformedError(Exception):
    """A schema node is not shaped like Avro (raised while scanning, reported with the file)."""


def file_stem(file_name: str) -> str:
    """The subject of an unnamed schema file: its name without ``.avsc`` (and ``.v<N>``)."""
    stem = Path(file_name).name.removesuffix(".avsc")
    return _VERSION_SUFFIX.sub("", stem)


def _load_document(raw: str | bytes, where: str) -> Json:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SchemaError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"{where}: not valid JSON: {exc}") from None


def avro_dir() -> Path:
    """The schema directory: ``RSPP_AVRO_DIR`` or ``<repo>/avro``."""
    env = os.environ.get("RSPP_AVRO_DIR", "").strip()
    return Path(env).expanduser() if env else repo_root() / "avro"


def _fullname(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


@dataclass(frozen=True, slots=True)
class SchemaSet:
    """Schemas read from one source (a directory, a git ref, ...).

    ``definitions`` maps each named type's full name to its JSON definition as
    written; ``origins`` maps it (and each unnamed subject) to its file, for
    error messages. ``unnamed`` holds the files whose top level is not a named
    type (a primitive, array, map or union): their subject is the file stem,
    as under the topic-name strategy. ``top_level`` names the types defined at
    the top of a file (only those can be subjects).
    """

    source: str
    definitions: Mapping[str, Json]
    origins: Mapping[str, str]
    unnamed: Mapping[str, Json] = field(default_factory=dict)
    top_level: frozenset[str] = frozenset()

    @classmethod
    def from_texts(cls, texts: Mapping[str, str | bytes], *, source: str) -> SchemaSet:
        """Build a set from ``{file name: .avsc text or bytes}``."""
        definitions: dict[str, Json] = {}
        origins: dict[str, str] = {}
        unnamed: dict[str, Json] = {}
        top_level: set[str] = set()
        for file_name in sorted(texts):
            where = f"{source}/{file_name}"
            document = _load_document(texts[file_name], where)
            try:
                found = list(_named_definitions(document, None))
            except _MalformedError as exc:
                raise SchemaError(f"{where}: {exc}") from None
            except RecursionError:
                raise SchemaError(f"{where}: schema nested too deeply") from None
            if isinstance(document, dict) and document.get("type") in _NAMED:
                top_level.add(found[0][0])
            else:
                stem = file_stem(file_name)
                if stem in origins:
                    raise SchemaError(
                        f"{where}: subject {stem} is already defined in {origins[stem]}"
                    )
                unnamed[stem] = document
                origins[stem] = file_name
            for fullname, definition in found:
                if fullname in definitions or fullname in unnamed:
                    raise SchemaError(
                        f"{where}: {fullname} is already defined in {origins[fullname]}"
                    )
                definitions[fullname] = definition
                origins[fullname] = file_name
        clash = set(unnamed) & set(definitions)
        if clash:
            name = sorted(clash)[0]
            raise SchemaError(f"{source}: {name} is both a file stem and a named type")
        return cls(
            source=source,
            definitions=definitions,
            origins=origins,
            unnamed=unnamed,
            top_level=frozenset(top_level),
        )

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.definitions))

    def subjects(self) -> tuple[str, ...]:
        """Every subject: named types at the top of a file that nothing refers to, then file stems.

        Enums and fixed types count like records; a named type defined inside
        another (or referred to by one) is part of that subject, not its own.
        """
        referenced: set[str] = set()
        for fullname, definition in self.definitions.items():
            namespace = fullname.rpartition(".")[0] or None
            referenced.update(r for r in _references(definition, namespace) if r != fullname)
        for document in self.unnamed.values():
            referenced.update(_references(document, None))
        named = sorted(n for n in self.top_level if n not in referenced)
        return (*named, *sorted(self.unnamed))

    def roots(self) -> tuple[str, ...]:
        """Records no other type refers to: the record subjects of this set (``rspp.events.Envelope``)."""
        return tuple(
            name
            for name in self.subjects()
            if name in self.definitions
            and self.definitions[name].get("type") in ("record", "error")
        )

    def compose(self, fullname: str) -> Json:
        """A self-contained schema for a subject: every named type inlined once."""
        if fullname in self.unnamed:
            node = self.unnamed[fullname]
        elif fullname in self.definitions:
            node = self.definitions[fullname]
        else:
            raise SchemaError(f"{self.source}: no schema named {fullname}")
        defined: set[str] = set()
        try:
            composed = self._inline(node, None, defined, fullname)
        except RecursionError:
            origin = self.origins.get(fullname, "?")
            raise SchemaError(f"{self.source}/{origin}: {fullname} is nested too deeply") from None
        try:
            parse_schema(composed)
        except Exception as exc:
            origin = self.origins[fullname]
            raise SchemaError(f"{self.source}/{origin}: invalid schema {fullname}: {exc}") from None
        return composed

    def _inline(self, node: Json, namespace: str | None, defined: set[str], context: str) -> Json:
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return node
            name = _fullname(node, namespace)
            if name in defined:
                return name
            if name not in self.definitions:
                raise SchemaError(
                    f"{self.source}/{self.origins.get(context, '?')}: {context} refers to unknown type {name}"
                )
            return self._inline(self.definitions[name], namespace, defined, name)
        if isinstance(node, list):
            return [self._inline(branch, namespace, defined, context) for branch in node]
        if not isinstance(node, dict):
            raise SchemaError(f"{self.source}: {context}: unexpected schema node {node!r}")
        kind = node.get("type")
        if kind in _NAMED:
            name = _fullname(str(node["name"]), node.get("namespace", namespace))
            if name in defined:
                return name
            defined.add(name)
            out = dict(node)
            out["name"] = name
            out.pop("namespace", None)
            child_ns = name.rpartition(".")[0] or None
            if kind in ("record", "error"):
                out["fields"] = [
                    {**item, "type": self._inline(item["type"], child_ns, defined, name)}
                    for item in node.get("fields", [])
                ]
            return out
        if kind == "array":
            return {**node, "items": self._inline(node.get("items"), namespace, defined, context)}
        if kind == "map":
            return {**node, "values": self._inline(node.get("values"), namespace, defined, context)}
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in _PRIMITIVES):
            return {**node, "type": self._inline(kind, namespace, defined, context)}
        return node


def _type_name(node: dict[str, Any], namespace: str | None) -> str:
    name = node.get("name")
    if not isinstance(name, str) or not name:
        raise _MalformedError(f"{node.get('type')} has no name")
    space = node.get("namespace", namespace)
    return _fullname(name, space if isinstance(space, str) else None)


def _fields(node: dict[str, Any], name: str) -> list[dict[str, Any]]:
    fields = node.get("fields", [])
    if not isinstance(fields, list) or not all(isinstance(f, dict) and "type" in f for f in fields):
        raise _MalformedError(f"{name}: fields must be a list of objects with a type")
    return fields


def _named_definitions(node: Json, namespace: str | None) -> Iterator[tuple[str, Json]]:
    """Every named type defined (not merely referenced) inside ``node``."""
    if isinstance(node, list):
        for branch in node:
            yield from _named_definitions(branch, namespace)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in _NAMED:
        name = _type_name(node, namespace)
        yield name, node
        child_ns = name.rpartition(".")[0] or None
        for item in _fields(node, name) if kind in ("record", "error") else ():
            yield from _named_definitions(item["type"], child_ns)
    elif kind == "array":
        yield from _named_definitions(node.get("items"), namespace)
    elif kind == "map":
        yield from _named_definitions(node.get("values"), namespace)
    elif isinstance(kind, (dict, list)):
        yield from _named_definitions(kind, namespace)


def _references(node: Json, namespace: str | None) -> Iterator[str]:
    if isinstance(node, str):
        if node not in _PRIMITIVES:
            yield _fullname(node, namespace)
        return
    if isinstance(node, list):
        for branch in node:
            yield from _references(branch, namespace)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in _NAMED:
        name = _type_name(node, namespace)
        child_ns = name.rpartition(".")[0] or None
        for item in _fields(node, name) if kind in ("record", "error") else ():
            yield from _references(item["type"], child_ns)
    elif kind == "array":
        yield from _references(node.get("items"), namespace)
    elif kind == "map":
        yield from _references(node.get("values"), namespace)
    else:
        yield from _references(kind, namespace)


def load_schema_dir(directory: Path | None = None) -> SchemaSet:
    """Read every ``*.avsc`` in ``directory`` (default :func:`avro_dir`)."""
    root = directory if directory is not None else avro_dir()
    if not root.is_dir():
        raise SchemaError(f"{root}: not a schema directory")
    try:
        texts = {path.name: path.read_bytes() for path in sorted(root.glob("*.avsc"))}
    except OSError as exc:
        raise SchemaError(f"{root}: unreadable: {exc.strerror or exc}") from None
    if not texts:
        raise SchemaError(f"{root}: no .avsc files")
    return SchemaSet.from_texts(texts, source=str(root))


def parse(schema: Json) -> Any:
    """fastavro's parsed form of a composed schema (cached by callers)."""
    try:
        return parse_schema(schema)
    except Exception as exc:
        raise SchemaError(f"invalid schema: {exc}") from None


def fingerprint(schema: Json) -> str:
    """sha256 (hex) of the Parsing Canonical Form: docs and order-irrelevant props ignored."""
    canonical = to_parsing_canonical_form(parse(schema))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def schema_id_for(schema: Json) -> int:
    """Deterministic 31-bit schema id from the fingerprint (no coordination between branches)."""
    value = int(fingerprint(schema)[:8], 16) & 0x7FFFFFFF
    return value or 1
