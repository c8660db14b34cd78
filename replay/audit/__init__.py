"""Audit: the event log as DuckDB tables, canned reports and read-only SQL.

    from replay.audit import AuditStore
    store = AuditStore("audit.duckdb")
    store.load_export("exports/run-42")                 # or .load_kafka(bootstrap, prefix)
    store.report("turns", tenant="acme")                # one dict per turn
    store.sql("SELECT node_id, count(*) FROM v_node_outputs GROUP BY ALL")
    store.sql("SELECT count(*) FROM events", tenant="acme", limits=Limits(timeout_s=10))

Tables (:mod:`.schema`): ``events`` (one row per log record, envelope columns +
``p_<field>`` payload columns), ``dead_letters``, ``loaded`` (offsets, what makes
loads incremental) and one ``v_<type>`` view per payload type. With ``tenant=``
a report or query runs in a database that holds only that tenant's rows
(:mod:`.scope`); every read runs under :class:`Limits` (time, memory, rows).
"""

from __future__ import annotations

from replay.audit.errors import (
    AuditError,
    LimitExceededError,
    QueryError,
    StoreError,
    WriteRefusedError,
)
from replay.audit.reports import REPORTS
from replay.audit.schema import VIEWS
from replay.audit.scope import Limits
from replay.audit.store import AuditStore, LoadResult

__all__ = [
    "REPORTS",
    "VIEWS",
    "AuditError",
    "AuditStore",
    "LimitExceededError",
    "Limits",
    "LoadResult",
    "QueryError",
    "StoreError",
    "WriteRefusedError",
]
