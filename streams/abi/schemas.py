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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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
    """Named types read from one source (a directory, a git ref, ...).

    ``definitions`` maps each full name to its JSON definition exactly as written;
    ``origins`` maps it to the file that defines it (for error messages).
    """

    source: str
    definitions: Mapping[str, Json]
    origins: Mapping[str, str]

    @classmethod
    def from_texts(cls, texts: Mapping[str, str], *, source: str) -> SchemaSet:
        """Build a set from ``{file name: .avsc text}``."""
        definitions: dict[str, Json] = {}
        origins: dict[str, str] = {}
        for file_name in sorted(texts):
            try:
                document = orjson.loads(texts[file_name])
            except orjson.JSONDecodeError as exc:
                raise SchemaError(f"{source}/{file_name}: not valid JSON: {exc}") from None
            if not isinstance(document, dict) or document.get("type") not in _NAMED:
                raise SchemaError(
                    f"{source}/{file_name}: top level must be a named type (record/enum/fixed)"
                )
            for fullname, definition in _named_definitions(document, None):
                if fullname in definitions:
                    raise SchemaError(
                        f"{source}/{file_name}: {fullname} is already defined in {origins[fullname]}"
                    )
                definitions[fullname] = definition
                origins[fullname] = file_name
        return cls(source=source, definitions=definitions, origins=origins)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.definitions))

    def roots(self) -> tuple[str, ...]:
        """Records no other type refers to: the subjects of this set (``rspp.events.Envelope``)."""
        referenced: set[str] = set()
        for fullname, definition in self.definitions.items():
            namespace = fullname.rpartition(".")[0] or None
            referenced.update(r for r in _references(definition, namespace) if r != fullname)
        return tuple(
            name
            for name in sorted(self.definitions)
            if name not in referenced and self.definitions[name].get("type") in ("record", "error")
        )

    def compose(self, fullname: str) -> Json:
        """A self-contained schema for ``fullname``: every named type inlined once."""
        if fullname not in self.definitions:
            raise SchemaError(f"{self.source}: no schema named {fullname}")
        defined: set[str] = set()
        composed = self._inline(self.definitions[fullname], None, defined, fullname)
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
                    {**field, "type": self._inline(field["type"], child_ns, defined, name)}
                    for field in node.get("fields", [])
                ]
            return out
        if kind == "array":
            return {**node, "items": self._inline(node["items"], namespace, defined, context)}
        if kind == "map":
            return {**node, "values": self._inline(node["values"], namespace, defined, context)}
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in _PRIMITIVES):
            return {**node, "type": self._inline(kind, namespace, defined, context)}
        return node


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
        name = _fullname(str(node["name"]), node.get("namespace", namespace))
        yield name, node
        child_ns = name.rpartition(".")[0] or None
        for field in node.get("fields", []):
            yield from _named_definitions(field["type"], child_ns)
    elif kind == "array":
        yield from _named_definitions(node["items"], namespace)
    elif kind == "map":
        yield from _named_definitions(node["values"], namespace)
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
        name = _fullname(str(node["name"]), node.get("namespace", namespace))
        child_ns = name.rpartition(".")[0] or None
        for field in node.get("fields", []):
            yield from _references(field["type"], child_ns)
    elif kind == "array":
        yield from _references(node["items"], namespace)
    elif kind == "map":
        yield from _references(node["values"], namespace)
    else:
        yield from _references(kind, namespace)


def load_schema_dir(directory: Path | None = None) -> SchemaSet:
    """Read every ``*.avsc`` in ``directory`` (default :func:`avro_dir`)."""
    root = directory if directory is not None else avro_dir()
    if not root.is_dir():
        raise SchemaError(f"{root}: not a schema directory")
    texts = {path.name: path.read_text(encoding="utf-8") for path in sorted(root.glob("*.avsc"))}
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
