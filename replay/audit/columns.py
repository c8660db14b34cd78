"""The flat row layout of a logged event, derived from the ABI's dataclasses.

One wide table holds every event: the envelope's fields as typed columns, then
one ``p_<field>`` column per payload field of any payload type (NULL where the
event's type has no such field). DuckDB stores the mostly-NULL columns in a few
bytes per row group, and deriving them from :data:`streams.abi.events.PAYLOAD_TYPES`
means a new ABI field shows up in the audit tables without anyone editing SQL.
Binary fields (audio, DLQ bytes) are stored as their length: auditors count
bytes, they do not listen to them.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from replay.model import Position
from streams.abi.events import PAYLOAD_TYPES, Envelope, Header, Payload

__all__ = ["COLUMNS", "ENVELOPE_COLUMNS", "PAYLOAD_COLUMNS", "Column", "RowBatch", "payload_fields"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    sql_type: str
    arrow_type: pa.DataType


_VARCHAR = ("VARCHAR", pa.string())
# ts is TIMESTAMP holding UTC, not TIMESTAMPTZ: zone-aware functions need DuckDB's ICU
# extension, which an offline auditor's machine may not be able to install.
_TS = pa.timestamp("us")
_TS_UTC = pa.timestamp("us", tz="UTC")
_BIGINT = ("BIGINT", pa.int64())

ENVELOPE_COLUMNS: tuple[Column, ...] = tuple(Column(n, s, a) for n, (s, a) in (
    ("source", _VARCHAR), ("partition", ("INTEGER", pa.int32())), ("offset", _BIGINT),
    ("event_id", _VARCHAR), ("event_type", _VARCHAR), ("lane", _VARCHAR),
    ("tenant_id", _VARCHAR), ("session_id", _VARCHAR), ("turn_id", _VARCHAR),
    ("correlation_id", _VARCHAR), ("causation_id", _VARCHAR), ("trace_id", _VARCHAR),
    ("lease_epoch", _BIGINT), ("bundle_id", _VARCHAR), ("plan_hash", _VARCHAR),
    ("node_id", _VARCHAR), ("seq", _BIGINT), ("ts", ("TIMESTAMP", pa.timestamp("us"))),
))

def _scalar(hint: Any) -> tuple[str, pa.DataType, Callable[[Any], Any] | None, str]:
    """(sql type, arrow type, converter, column suffix) for one payload field's annotation."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = args[0]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "VARCHAR", pa.string(), lambda v: v.value, ""
    if hint is bool:
        return "BOOLEAN", pa.bool_(), None, ""
    if hint is int:
        return "BIGINT", pa.int64(), None, ""
    if hint is float:
        return "DOUBLE", pa.float64(), None, ""
    if hint is str:
        return "VARCHAR", pa.string(), None, ""
    if hint is bytes:
        return "BIGINT", pa.int64(), len, "_bytes"
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[0] is Header:
        return "VARCHAR", pa.string(), _headers_json, ""
    raise TypeError(f"no audit column type for payload annotation {hint!r}")


def _headers_json(headers: Sequence[Header]) -> str:
    return orjson.dumps({h.key: None if h.value is None else h.value.decode("utf-8", "replace")
                         for h in headers}).decode()


_Getter = tuple[int, str, Callable[[Any], Any] | None]


def _derive() -> tuple[tuple[Column, ...], dict[type[Payload], tuple[_Getter, ...]],
                       dict[type[Payload], tuple[tuple[str, str], ...]]]:
    columns: dict[str, Column] = {}
    getters: dict[type[Payload], list[_Getter]] = {}
    fields_of: dict[type[Payload], list[tuple[str, str]]] = {}
    base = len(ENVELOPE_COLUMNS)
    for cls in PAYLOAD_TYPES.values():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            sql, arrow, convert, suffix = _scalar(hints[f.name])
            name = f"p_{f.name}{suffix}"
            have = columns.setdefault(name, Column(name, sql, arrow))
            if have.sql_type != sql:  # two payloads disagree on a field's type: one column can't hold both
                raise TypeError(f"payload field {cls.__name__}.{f.name} is {sql}, elsewhere {have.sql_type}")
            index = base + list(columns).index(name)
            getters.setdefault(cls, []).append((index, f.name, convert))
            fields_of.setdefault(cls, []).append((name, f"{f.name}{suffix}"))
    return (tuple(columns.values()), {k: tuple(v) for k, v in getters.items()},
            {k: tuple(v) for k, v in fields_of.items()})


PAYLOAD_COLUMNS, _GETTERS, _FIELDS = _derive()
COLUMNS: tuple[Column, ...] = ENVELOPE_COLUMNS + PAYLOAD_COLUMNS
_WIDTH = len(COLUMNS)
_SCHEMA = pa.schema([(c.name, c.arrow_type) for c in COLUMNS])


def payload_fields(cls: type[Payload]) -> tuple[tuple[str, str], ...]:
    """``(column, view alias)`` of each field of ``cls``, e.g. ``("p_audio_bytes", "audio_bytes")``."""
    return _FIELDS.get(cls, ())


class RowBatch:
    """Rows accumulated row-major (cheap per event), handed to DuckDB as one Arrow table.

    A dead letter is a row like any other: its envelope's ``tenant_id``/``session_id`` are
    the ones the processor established. The original record's ``rspp_tenant`` header is
    only kept inside ``p_original_headers``; any producer can write it, so nothing here
    files a row under it.
    """

    __slots__ = ("counts", "rows")

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self.counts: dict[tuple[str, int], int] = {}  # rows per (source, partition)

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, pos: Position, env: Envelope) -> None:
        c = env.correlation
        row: list[Any] = [pos.source, pos.partition, pos.offset, env.event_id, env.event_type.value,
                          env.lane.value, env.tenant_id, env.session_id, env.turn_id,
                          c.correlation_id, c.causation_id, c.trace_id, env.lease_epoch,
                          env.bundle_id, env.plan_hash, env.node_id, env.seq, env.ts]
        row.extend([None] * (_WIDTH - len(row)))
        payload = env.payload
        for index, name, convert in _GETTERS.get(type(payload), ()):
            value = getattr(payload, name)
            row[index] = value if convert is None or value is None else convert(value)
        self.rows.append(row)
        key = (pos.source, pos.partition)
        self.counts[key] = self.counts.get(key, 0) + 1

    def extend(self, items: Iterable[tuple[Position, Envelope]]) -> None:
        for pos, env in items:
            self.add(pos, env)

    def to_arrow(self) -> pa.Table:
        columns = list(zip(*self.rows, strict=True)) if self.rows else [()] * len(_SCHEMA)
        return pa.Table.from_arrays(
            [_array(col, f.type) for col, f in zip(columns, _SCHEMA, strict=True)], schema=_SCHEMA)


def _array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    if arrow_type == _TS:
        # Envelope.ts is UTC-aware; read it as UTC, then drop the zone (the column is UTC).
        return pa.array(values, type=_TS_UTC).cast(_TS)
    return pa.array(values, type=arrow_type)

