"""The audit store: an on-disk DuckDB database loaded incrementally from log sources.

    store = AuditStore("audit.duckdb")
    store.load_kafka(bootstrap, "prod.voice")          # <prefix>.log + <prefix>.dlq, new records only
    store.report("turns", tenant="acme")               # list of dicts
    store.sql("SELECT event_type, count(*) FROM events GROUP BY ALL")
    store.sql("SELECT count(*) FROM v_turn_opens", tenant="acme", limits=Limits(timeout_s=5))

Each operation opens its own connection and closes it: DuckDB allows one
writing process per file, and an auditor's read-only session must not be
locked out by a store object somebody forgot to close. Reads (reports, SQL)
run in a :mod:`.scope`: the file read-only, or with ``tenant=`` a database
holding only that tenant's rows, always under time/memory/row limits. ``sql``
additionally refuses every statement that is not a query and runs locked down
(no file or network access, configuration locked), so an ad-hoc query cannot
write anywhere nor read past its scope.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import fastavro

from replay.audit.columns import RowBatch
from replay.audit.errors import QueryError, StoreError, WriteRefusedError
from replay.audit.reports import REPORTS, Report, report_sql
from replay.audit.schema import create_schema
from replay.audit.scope import Limits, one_line, open_scope
from replay.export import read_manifest
from replay.model import Position
from replay.sources import MANIFEST, META_TOPIC, ContainerLogSource, KafkaLogSource
from streams.abi.events import Envelope

__all__ = ["AuditStore", "LoadResult"]

_BATCH = 50_000
_READ_ONLY_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})
_EXPORT_FORMATS = {".csv": "csv", ".parquet": "parquet"}
_LIMITS = Limits()


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    """What one load added: ``events`` new log rows, ``dead_letters`` new DLQ rows."""

    source: str
    events: int
    dead_letters: int
    skipped: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return (self.events + self.dead_letters) / self.seconds if self.seconds > 0 else 0.0


class AuditStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    # -- connections ------------------------------------------------------------------------
    @contextmanager
    def _connect(self, *, read_only: bool) -> Iterator[Any]:
        if read_only and not self.path.is_file():
            raise StoreError(f"{self.path}: no audit database (run `rspp audit load` first)")
        try:
            con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"{self.path}: cannot open audit database: {one_line(exc)}") from None
        try:
            yield con
        finally:
            con.close()

    # -- loading ----------------------------------------------------------------------------
    def load_kafka(self, bootstrap: str, prefix: str, *, dlq: bool = True,
                   idle_timeout_s: float = 10.0) -> LoadResult:
        """Load new records of ``<prefix>.log`` (and ``<prefix>.dlq``) read_committed."""
        started = time.perf_counter()
        from streams.topics import TopicLayout

        layout = TopicLayout(prefix=prefix)
        with self._connect(read_only=False) as con:
            create_schema(con, path=str(self.path))

            def source(topic: str) -> KafkaLogSource:
                # Resume after what this database holds: loaded records are not read again.
                done = dict(con.execute("SELECT partition, next_offset FROM loaded WHERE source = ?",
                                        [topic]).fetchall())
                return KafkaLogSource(bootstrap, prefix, idle_timeout_s=idle_timeout_s, topic=topic,
                                      start_offsets=done)

            log = source(layout.log)
            events, skipped = self._load(con, log, kind="kafka", topic=log.topic, table="events")
            dead = 0
            if dlq:
                dead_source = source(layout.dlq)
                dead, more = self._load(con, dead_source, kind="kafka", topic=dead_source.topic,
                                        table="dead_letters")
                skipped += more
        return LoadResult(source=log.topic, events=events, dead_letters=dead, skipped=skipped,
                          seconds=time.perf_counter() - started)

    def load_export(self, path: Path | str) -> LoadResult:
        """Load new records of an ``rspp export`` directory (or one ``.avro`` container file)."""
        started = time.perf_counter()
        source = ContainerLogSource(path)
        topic = _export_topic(source)
        with self._connect(read_only=False) as con:
            create_schema(con, path=str(self.path))
            events, skipped = self._load(con, source, kind="export", topic=topic, table="events")
        return LoadResult(source=str(path), events=events, dead_letters=0, skipped=skipped,
                          seconds=time.perf_counter() - started)

    def _load(self, con: Any, source: Iterable[tuple[Position, Envelope]], *, kind: str,
              topic: str | None, table: str) -> tuple[int, int]:
        if topic is not None:
            other = con.execute("SELECT any_value(source) FROM loaded WHERE topic = ? AND kind <> ?",
                                [topic, kind]).fetchone()
            if other is not None and other[0] is not None:
                # Kafka offsets and container record indexes do not line up: loading both would
                # insert every event twice with no key to tell the copies apart.
                raise StoreError(f"{self.path}: {topic} is already loaded from {other[0]}; "
                                 f"load a {kind} copy of it into another database")
        done: dict[tuple[str, int], int] = {
            (s, p): o for s, p, o in con.execute(
                "SELECT source, partition, next_offset FROM loaded").fetchall()}
        batch = RowBatch()
        ends: dict[tuple[str, int], int] = {}
        added = skipped = 0
        for pos, env in source:
            key = (pos.source, pos.partition)
            if pos.offset < done.get(key, 0):
                skipped += 1
                continue
            batch.add(pos, env)
            ends[key] = pos.offset + 1
            if len(batch) >= _BATCH:
                added += self._flush(con, batch, ends, kind=kind, topic=topic, table=table)
                batch = RowBatch()
        added += self._flush(con, batch, ends, kind=kind, topic=topic, table=table)
        return added, skipped

    @staticmethod
    def _flush(con: Any, batch: RowBatch, ends: dict[tuple[str, int], int], *, kind: str,
               topic: str | None, table: str) -> int:
        if not batch:
            return 0
        arrow = batch.to_arrow()
        now = datetime.now(UTC).replace(tzinfo=None)
        # Rows and the offsets that say they are loaded commit together: a load killed midway
        # leaves whole batches behind, and the next load starts right after the last one.
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("_batch", arrow)
            con.execute(f"INSERT INTO {table} SELECT * FROM _batch")
            con.unregister("_batch")
            for (source, partition), count in batch.counts.items():
                con.execute("""INSERT INTO loaded VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (source, partition) DO UPDATE SET next_offset = excluded.next_offset,
                      records = records + excluded.records, loaded_at = excluded.loaded_at""",
                            [source, partition, kind, topic, ends[(source, partition)], count, now])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return len(batch)

    # -- reading ----------------------------------------------------------------------------
    def report(self, name: str, *, tenant: str | None = None, session: str | None = None,
               since: datetime | None = None, limits: Limits = _LIMITS) -> list[dict[str, Any]]:
        """Rows of the canned report ``name`` (see :data:`replay.audit.REPORTS`); with
        ``tenant``, it runs in a database holding only that tenant's rows."""
        report = _report(name)
        with open_scope(self.path, tenant=tenant, limits=limits, untrusted=False) as scope:
            try:
                return scope.rows(_report_relation(scope.con, report, session, tenant, since),
                                  f"report {name}")
            except duckdb.Error as exc:
                raise scope.failed(exc, f"report {name}") or QueryError(
                    f"report {name}: {one_line(exc)}") from None

    def export_report(self, name: str, out: Path | str, *, tenant: str | None = None,
                      session: str | None = None, since: datetime | None = None,
                      limits: Limits = _LIMITS) -> int:
        """Write a report to ``out`` (.csv or .parquet, by DuckDB COPY); returns the row count."""
        out = Path(out)
        fmt = _EXPORT_FORMATS.get(out.suffix.lower())
        if fmt is None:
            raise QueryError(f"{out}: unknown export format {out.suffix!r} (use .csv or .parquet)")
        report = _report(name)
        with open_scope(self.path, tenant=tenant, limits=limits, untrusted=False) as scope:
            try:
                rel = _report_relation(scope.con, report, session, tenant, since)
                if fmt == "csv":
                    rel.write_csv(str(out), header=True)
                else:
                    rel.write_parquet(str(out))
                count = rel.aggregate("count(*)").fetchall()[0]
            except duckdb.Error as exc:
                raise scope.failed(exc, f"report {name}") or StoreError(
                    f"{out}: cannot write report {name}: {one_line(exc)}") from None
        return int(count[0]) if count else 0

    def sql(self, query: str, *, tenant: str | None = None, limits: Limits = _LIMITS) -> list[dict[str, Any]]:
        """Run one read-only query; anything that would write or reconfigure is refused.

        With ``tenant`` the query runs in a database that holds only that tenant's rows
        (:mod:`replay.audit.scope`); either way under ``limits`` and without file access.
        """
        _check_utf8(query)
        _check_read_only(query, self.path)
        with open_scope(self.path, tenant=tenant, limits=limits, untrusted=True) as scope:
            try:
                return scope.rows(scope.con.sql(query), "query")
            except duckdb.Error as exc:
                limit = scope.failed(exc, "query")
                if limit is not None:
                    raise limit from None
                if "read-only" in str(exc):
                    raise WriteRefusedError(f"{self.path}: refused: {one_line(exc)}") from None
                raise QueryError(f"query failed: {one_line(exc)}") from None

    def loaded(self) -> list[dict[str, Any]]:
        """The ``loaded`` table: next offset per source and partition."""
        with self._connect(read_only=True) as con:
            return _rows(con.sql("SELECT * FROM loaded ORDER BY source, partition"))


def _report(name: str) -> Report:
    report = REPORTS.get(name)
    if report is None:
        raise QueryError(f"unknown report {name!r} (one of: {', '.join(REPORTS)})")
    return report


def _report_relation(con: Any, report: Report, session: str | None, tenant: str | None,
                     since: datetime | None) -> Any:
    return con.sql(report_sql(report),
                   params={"tenant": tenant, "session": session, "since": _utc(since)})


def _check_utf8(query: str) -> None:
    """A query from argv holds undecodable bytes as lone surrogates (PEP 383); DuckDB
    would fail on them with a TypeError, so name the first one here instead."""
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = query[exc.start]
        byte = f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else repr(bad)
        raise QueryError(f"query is not valid UTF-8: {byte} at character {exc.start}") from None


def _check_read_only(query: str, path: Path) -> None:
    parser = duckdb.connect(":memory:")
    try:
        statements = parser.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(f"cannot parse query: {one_line(exc)}") from None
    finally:
        parser.close()
    if len(statements) != 1:
        raise QueryError(f"expected one statement, got {len(statements)}")
    try:
        kind = statements[0].type.name
    except ValueError:  # a statement type the Python binding has no name for (UPDATE EXTENSIONS)
        kind = "unknown"
    if kind not in _READ_ONLY_STATEMENTS:
        raise WriteRefusedError(
            f"{path}: {kind} statement refused: `rspp audit sql` is read-only "
            "(SELECT, WITH, FROM, SHOW, DESCRIBE, EXPLAIN)")


def _rows(rel: Any) -> list[dict[str, Any]]:
    if rel is None:
        return []
    names = [c for c in rel.columns]
    return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


def _utc(when: datetime | None) -> datetime | None:
    """``ts`` columns hold naive UTC; an aware ``since`` is converted, a naive one taken as UTC."""
    if when is None or when.tzinfo is None:
        return when
    return when.astimezone(UTC).replace(tzinfo=None)


def _export_topic(source: ContainerLogSource) -> str | None:
    """The topic an export was taken from (manifest, else the first file's container metadata)."""
    manifest = source.path / MANIFEST
    if manifest.is_file():
        export = read_manifest(manifest).get("export")
        if isinstance(export, dict) and export.get("topic"):
            return str(export["topic"])
    try:
        with source.files[0].open("rb") as handle:
            topic = fastavro.reader(handle).metadata.get(META_TOPIC)
    except Exception:  # ContainerLogSource reports unreadable files with their record index
        return None
    return str(topic) if topic else None
