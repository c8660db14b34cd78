"""The .avsc files are the ABI: documented, namespaced, matching the typed events."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from streams.abi import events as ev
from streams.abi.errors import SchemaError
from streams.abi.registry import FileRegistry
from streams.abi.schemas import ENVELOPE, SchemaSet, avro_dir, load_schema_dir, schema_id_for
from tests.abi.samples import PAYLOADS

ENVELOPE_FIELDS = [
    "event_id", "event_type", "lane", "tenant_id", "session_id", "turn_id", "correlation",
    "lease_epoch", "bundle_id", "plan_hash", "node_id", "seq", "ts", "payload",
]


def _records(node: object) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    if isinstance(node, dict):
        if node.get("type") in ("record", "enum"):
            out.append(node)
        for value in node.values():
            out.extend(_records(value))
    elif isinstance(node, list):
        for value in node:
            out.extend(_records(value))
    return out


def test_envelope_fields_are_exactly_the_abi() -> None:
    composed = load_schema_dir().compose(ENVELOPE)
    assert [f["name"] for f in composed["fields"]] == ENVELOPE_FIELDS
    ts = next(f for f in composed["fields"] if f["name"] == "ts")
    assert ts["type"] == {"type": "long", "logicalType": "timestamp-micros"}
    correlation = next(f for f in composed["fields"] if f["name"] == "correlation")["type"]
    assert [f["name"] for f in correlation["fields"]] == ["correlation_id", "causation_id", "trace_id"]


def test_every_named_type_and_field_is_documented_and_namespaced() -> None:
    for path in sorted(avro_dir().glob("*.avsc")):
        document = json.loads(path.read_text())
        assert path.name == f"{document['namespace']}.{document['name']}.avsc"
        for named in _records(document):
            assert named.get("doc"), f"{path.name}: {named['name']} lacks doc"
            for field in named.get("fields", []):  # type: ignore[attr-defined]
                assert field.get("doc"), f"{path.name}: {named['name']}.{field['name']} lacks doc"
        assert document["namespace"] == "rspp.events"


def test_optional_fields_default_to_null() -> None:
    for named in _records(load_schema_dir().compose(ENVELOPE)):
        for field in named.get("fields", []):  # type: ignore[attr-defined]
            if isinstance(field["type"], list) and field["type"][0] == "null":
                assert "default" in field and field["default"] is None, field["name"]


def test_dataclasses_mirror_the_payload_records() -> None:
    schemas = load_schema_dir()
    payload_branches = next(f for f in schemas.definitions[ENVELOPE]["fields"] if f["name"] == "payload")["type"]
    assert sorted(payload_branches) == sorted(ev.PAYLOAD_TYPES)
    for name, cls in ev.PAYLOAD_TYPES.items():
        avro_fields = [f["name"] for f in schemas.definitions[name]["fields"]]
        assert [f.name for f in dataclasses.fields(cls)] == avro_fields, name  # type: ignore[arg-type]
    symbols = schemas.definitions["rspp.events.EventType"]["symbols"]
    assert symbols == [e.value for e in ev.EventType]
    assert {cls.EVENT_TYPE for cls in ev.PAYLOAD_TYPES.values()} == set(ev.EventType)
    assert {type(p) for p in PAYLOADS} == set(ev.PAYLOAD_TYPES.values())


def test_current_schema_is_registered_with_its_deterministic_id() -> None:
    composed = load_schema_dir().compose(ENVELOPE)
    versions = FileRegistry().versions(ENVELOPE)
    assert versions, "avro/registry.json has no Envelope version"
    assert versions[-1].schema_id == schema_id_for(composed)
    assert 0 < versions[-1].schema_id < 2**31


def test_bad_schema_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"broken\.avsc: not valid JSON"):
        SchemaSet.from_texts({"broken.avsc": "{"}, source="x")
    with pytest.raises(SchemaError, match=r"unknown type x\.Missing"):
        SchemaSet.from_texts(
            {"a.avsc": '{"type":"record","name":"A","namespace":"x","fields":[{"name":"f","type":"x.Missing"}]}'},
            source="x",
        ).compose("x.A")
    with pytest.raises(SchemaError, match="not a schema directory"):
        load_schema_dir(tmp_path / "nope")
