"""Property tests: codec never leaks foreign errors, events round-trip, checker agrees with Avro."""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.abi.compat.checker import UNCLASSIFIED, explain, is_compatible, to_avro
from streams.abi.errors import CodecError
from streams.abi.registry import FileRegistry

CODEC = EventCodec(registry=FileRegistry())
PREFIX = CODEC.encode(ev.Envelope.new(ev.Admit(), tenant_id="t", session_id="s", seq=0))[:5]
INT32 = st.integers(-(2**31), 2**31 - 1)
LONGS = st.integers(-(2**63), 2**63 - 1)
INT_FIELDS = {"sample_rate", "channels", "outputs", "partition", "original_partition"}


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_codec_errors(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        CODEC.decode(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bodies_behind_a_valid_header_only_raise_codec_errors(body: bytes) -> None:
    with contextlib.suppress(CodecError):
        CODEC.decode(PREFIX + body)


def _strategy(hint: Any, name: str) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return st.none() | _strategy(inner, name)
    if origin is tuple:
        return st.lists(st.builds(ev.Header, key=st.text(max_size=8), value=st.none() | st.binary(max_size=8)), max_size=3).map(tuple)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return st.sampled_from(list(hint))
    if hint is bool:
        return st.booleans()
    if hint is int:
        return INT32 if name in INT_FIELDS else LONGS
    if hint is float:
        return st.floats(allow_nan=True)
    if hint is bytes:
        return st.binary(max_size=64)
    return st.text(max_size=20)


def _builds(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: _strategy(hints[f.name], f.name) for f in dataclasses.fields(cls)})


PAYLOAD = st.one_of([_builds(cls) for cls in ev.PAYLOAD_TYPES.values()])
TS = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda d: d - timedelta(microseconds=0))
OPT = st.none() | st.text(max_size=12)


@st.composite
def envelopes(draw: st.DrawFn) -> ev.Envelope:
    payload = draw(PAYLOAD)
    return ev.Envelope(
        event_id=draw(st.text(max_size=36)),
        event_type=payload.EVENT_TYPE,
        lane=draw(st.sampled_from(list(ev.Lane))),
        tenant_id=draw(st.text(max_size=12)),
        session_id=draw(st.text(max_size=12)),
        turn_id=draw(OPT),
        correlation=ev.Correlation(correlation_id=draw(st.text(max_size=12)), causation_id=draw(OPT), trace_id=draw(OPT)),
        lease_epoch=draw(LONGS),
        bundle_id=draw(OPT),
        plan_hash=draw(OPT),
        node_id=draw(OPT),
        seq=draw(LONGS),
        ts=draw(TS),
        payload=payload,
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes())
def test_every_valid_event_round_trips_bit_exact(event: ev.Envelope) -> None:
    frame = CODEC.encode(event)
    decoded = CODEC.decode(frame)
    assert CODEC.encode(decoded) == frame  # bit-exact, NaN included
    assert type(decoded.payload) is type(event.payload)
    if "nan" not in repr(event):
        assert decoded == event


# --- compat checker vs the reference reader/writer rules -------------------------

PRIMS = ["int", "long", "float", "double", "string", "bytes", "boolean"]


def _enum(symbols: list[str], default: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "enum", "name": "E", "symbols": symbols}
    if default:
        out["default"] = symbols[0]
    return out


FIELD_TYPES = st.one_of(
    st.sampled_from(PRIMS),
    st.lists(st.sampled_from(["null", "int", "string", "double"]), min_size=1, max_size=3, unique=True),
    st.builds(_enum, st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3, unique=True), st.booleans()),
    st.builds(lambda t: {"type": "array", "items": t}, st.sampled_from(PRIMS)),
    st.builds(lambda t: {"type": "map", "values": t}, st.sampled_from(PRIMS)),
    st.builds(lambda t: {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": t}]}, st.sampled_from(PRIMS)),
)
_DEFAULTS = {"int": 0, "long": 0, "float": 0.0, "double": 0.0, "string": "", "bytes": "", "boolean": False}


def _default_for(type_: Any) -> tuple[bool, Any]:
    if isinstance(type_, str):
        return True, _DEFAULTS[type_]
    if isinstance(type_, list):
        return (type_[0] == "null", None) if type_[0] in ("null",) else (type_[0] in _DEFAULTS, _DEFAULTS.get(type_[0]))
    return False, None


@st.composite
def record_schemas(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4, unique=True))
    fields = []
    for name in names:
        type_ = draw(FIELD_TYPES)
        if isinstance(type_, dict) and "name" in type_:
            type_ = {**type_, "name": f"{type_['name']}_{name}"}  # a name is defined once per schema
        field: dict[str, Any] = {"name": name, "type": type_}
        ok, default = _default_for(type_)
        if ok and draw(st.booleans()):
            field["default"] = default
        if draw(st.integers(0, 9)) == 0:
            field["aliases"] = [draw(st.sampled_from(["a", "b", "c", "d"]))]
        fields.append(field)
    name = draw(st.sampled_from(["R", "R", "R", "S"]))
    schema: dict[str, Any] = {"type": "record", "name": name, "namespace": draw(st.sampled_from(["n1", "n1", "n2"])), "fields": fields}
    if name == "S" and draw(st.booleans()):
        schema["aliases"] = ["n1.R"]
    return schema


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(record_schemas(), record_schemas())
def test_checker_agrees_with_reference_rules_both_directions(old: dict[str, Any], new: dict[str, Any]) -> None:
    a, b = to_avro(old), to_avro(new)
    for reader, writer, backward in ((b, a, True), (a, b, False)):
        found = explain(reader, writer, backward=backward)
        assert bool(found) == (not is_compatible(reader, writer))
        assert all(rule != UNCLASSIFIED for _, rule, _ in found), found
