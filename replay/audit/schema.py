"""Tables and per-type views of an audit database.

- ``events``: every record of ``<prefix>.log`` (one row per record, see :mod:`.columns`).
- ``dead_letters``: every record of ``<prefix>.dlq``, same layout (tenant/session: the envelope's).
- ``lease_grants``: the LEASE_GRANTED rows of ``events`` (a view).
- ``loaded``: the next offset to load per source and partition (what makes loads incremental).
- ``audit_meta``: the schema version, so an old database is refused instead of misread.
- ``v_<type>`` views: one per payload type, envelope columns + that payload's fields unprefixed.
"""

from __future__ import annotations

import re
from typing import Any

from replay.audit.columns import COLUMNS, ENVELOPE_COLUMNS, payload_fields
from replay.audit.errors import StoreError
from streams.abi.events import PAYLOAD_TYPES, Payload

__all__ = ["SCHEMA_VERSION", "VIEWS", "check_version", "create_schema", "create_views", "view_name"]

# 2: dead letters are filed under their envelope's tenant/session (the processor's word);
# version 1 had original_tenant/original_session columns read off producer headers.
SCHEMA_VERSION = "2"

# Names an auditor would guess; the rest are derived (NodeOutput -> v_node_outputs).
_VIEW_NAMES = {
    "LeaseGranted": "v_leases",
    "OutputAccepted": "v_outputs_accepted",
    "PlaybackStarted": "v_playbacks_started",
    "Telemetry": "v_telemetry",
    "TurnActive": "v_turn_actives",
    "DeadLetter": "v_dead_letters",
}


def view_name(cls: type[Payload]) -> str:
    name = _VIEW_NAMES.get(cls.__name__)
    if name is None:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
        name = f"v_{snake}s"
    return name


VIEWS: dict[str, type[Payload]] = {view_name(cls): cls for cls in PAYLOAD_TYPES.values()}


def _quoted(name: str) -> str:
    return f'"{name}"'


def _table_ddl(table: str) -> str:
    cols = ", ".join(f"{_quoted(c.name)} {c.sql_type}" for c in COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


def _view_ddl(view: str, cls: type[Payload]) -> str:
    envelope = ", ".join(_quoted(c.name) for c in ENVELOPE_COLUMNS)
    fields = "".join(f", {_quoted(col)} AS {_quoted(alias)}" for col, alias in payload_fields(cls))
    table = {"v_dead_letters": "dead_letters", "v_leases": "lease_grants"}.get(view, "events")
    return (f"CREATE OR REPLACE VIEW {view} AS SELECT {envelope}{fields} FROM {table} "
            f"WHERE event_type = '{cls.EVENT_TYPE.value}'")


def check_version(con: Any, *, path: str, catalog: str = "main") -> None:
    """Refuse a database written by another schema version (its columns would be misread)."""
    rows = con.execute(f"SELECT value FROM {catalog}.audit_meta WHERE key = 'schema_version'").fetchall()
    if rows and rows[0][0] != SCHEMA_VERSION:
        raise StoreError(f"{path}: audit schema version {rows[0][0]}, this rspp writes "
                         f"{SCHEMA_VERSION}; load into a new database")


def create_views(con: Any, *, grants_view: bool = True) -> None:
    """The ``v_<type>`` views of the connection's database; ``lease_grants`` is a view over
    ``events`` unless the caller made it a table (a tenant scope does: its ``events`` hold
    the tenant's rows only, and lease grants belong to no tenant)."""
    if grants_view:
        con.execute("CREATE OR REPLACE VIEW lease_grants AS SELECT * FROM events "
                    "WHERE event_type = 'LEASE_GRANTED'")
    for view, cls in VIEWS.items():
        con.execute(_view_ddl(view, cls))


def create_schema(con: Any, *, path: str) -> None:
    """Create (idempotently) every table and view; refuse a database of another version."""
    con.execute("CREATE TABLE IF NOT EXISTS audit_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    check_version(con, path=path)
    con.execute("INSERT OR IGNORE INTO audit_meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
    con.execute(_table_ddl("events"))
    con.execute(_table_ddl("dead_letters"))
    con.execute("""CREATE TABLE IF NOT EXISTS loaded (
        source VARCHAR, partition INTEGER, kind VARCHAR, topic VARCHAR, next_offset BIGINT,
        records BIGINT, loaded_at TIMESTAMP, PRIMARY KEY (source, partition))""")
    create_views(con)
