"""Property: ``rspp compat check`` agrees with ``avro.compatibility`` on generated evolutions, in every mode.

Each example is a history of one subject (two to four versions of a record,
an enum, a fixed or an unnamed schema) kept in a directory as
``Evt.v<N>.avsc`` plus the new ``Evt.avsc``; a named type may be renamed in
the new version, with or without an alias naming the old one. The reference
verdict is computed straight from the reader/writer oracle with the Schema
Registry's reading of the modes (latest version, or all for ``_TRANSITIVE``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.abi.compat import CompatMode, check_schemas, is_compatible
from streams.abi.compat.checker import to_avro

PRIMS = ["null", "boolean", "int", "long", "float", "double", "string", "bytes"]
_DEFAULTS: dict[str, Any] = {
    "boolean": False,
    "int": 0,
    "long": 0,
    "float": 0.0,
    "double": 0.0,
    "string": "",
    "bytes": "",
}

UNNAMED = st.one_of(
    st.sampled_from(PRIMS),
    st.builds(lambda t: {"type": "array", "items": t}, st.sampled_from(PRIMS)),
    st.builds(lambda t: {"type": "map", "values": t}, st.sampled_from(PRIMS)),
    st.lists(st.sampled_from(PRIMS), min_size=1, max_size=3, unique=True),
)


def _enum(name: str, symbols: list[str], default: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "enum", "name": name, "namespace": "n1", "symbols": symbols}
    if default:
        out["default"] = symbols[0]
    return out


@st.composite
def _field_type(draw: st.DrawFn, field: str) -> Any:
    kind = draw(st.sampled_from(["prim", "prim", "union", "enum", "array", "record"]))
    if kind == "prim":
        return draw(st.sampled_from(PRIMS[1:]))
    if kind == "union":
        return draw(
            st.lists(
                st.sampled_from(["null", "int", "long", "string"]),
                min_size=1,
                max_size=3,
                unique=True,
            )
        )
    if kind == "enum":
        symbols = draw(
            st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3, unique=True)
        )
        return _enum(f"E_{field}", symbols, draw(st.booleans()))
    if kind == "array":
        return {"type": "array", "items": draw(st.sampled_from(PRIMS[1:]))}
    inner = draw(st.sampled_from(PRIMS[1:]))
    return {"type": "record", "name": f"Inner_{field}", "fields": [{"name": "x", "type": inner}]}


@st.composite
def _record(draw: st.DrawFn, name: str) -> dict[str, Any]:
    fields = []
    for field in draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4, unique=True)):
        type_ = draw(_field_type(field))
        entry: dict[str, Any] = {"name": field, "type": type_}
        if isinstance(type_, str) and draw(st.booleans()):
            entry["default"] = _DEFAULTS[type_]
        elif isinstance(type_, list) and type_[0] == "null" and draw(st.booleans()):
            entry["default"] = None
        fields.append(entry)
    return {"type": "record", "name": name, "namespace": "n1", "fields": fields}


def _named(draw: st.DrawFn, family: str, name: str) -> dict[str, Any]:
    if family == "record":
        return draw(_record(name))
    if family == "enum":
        symbols = draw(
            st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3, unique=True)
        )
        return _enum(name, symbols, draw(st.booleans()))
    return {"type": "fixed", "name": name, "namespace": "n1", "size": draw(st.sampled_from([4, 8]))}


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Any], Any]:
    family = draw(st.sampled_from(["unnamed", "record", "enum", "fixed"]))
    count = draw(st.integers(1, 3))
    if family == "unnamed":
        versions = [draw(UNNAMED) for _ in range(count + 1)]
        return versions[:-1], versions[-1]
    previous = [_named(draw, family, "R") for _ in range(count)]
    rename = draw(st.sampled_from(["keep", "keep", "keep", "alias", "bare"]))
    new = _named(draw, family, "R" if rename == "keep" else "S")
    if rename == "alias":
        new["aliases"] = ["n1.R"]
    return previous, new


def reference(previous: list[Any], new: Any, mode: CompatMode) -> bool:
    """The Schema Registry's reading of ``mode`` over the reference reader/writer verdict."""
    if mode is CompatMode.NONE:
        return True
    new_schema = to_avro(new)
    for old in previous if mode.transitive else previous[-1:]:
        old_schema = to_avro(old)
        if mode.backward and not is_compatible(new_schema, old_schema):
            return False
        if mode.forward and not is_compatible(old_schema, new_schema):
            return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.sampled_from(list(CompatMode)))
def test_directory_history_agrees_with_the_reference_in_every_mode(
    history: tuple[list[Any], Any], mode: CompatMode
) -> None:
    previous, new = history
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for number, schema in enumerate(previous, start=1):
            (directory / f"Evt.v{number}.avsc").write_text(json.dumps(schema))
        (directory / "Evt.avsc").write_text(json.dumps(new))
        report = check_schemas(directory, mode=mode)
    assert report.empty_reason is None
    assert report.ok is reference(previous, new, mode), report.to_text()
