"""Where audit reads run: a tenant's scope, a locked-down connection, resource limits.

:func:`open_scope` yields the DuckDB connection for one read (a report or one query):

- No tenant: the audit file itself, opened read-only (the operator's view).
- A tenant ``T``: a private scratch database holding a copy of only ``T``'s rows:
  ``events`` and ``dead_letters`` where ``tenant_id`` is T (for a dead letter, the
  tenant the processor established), ``lease_grants`` of the log partitions T's
  sessions are on (system rows), the ``v_<type>`` views and ``audit_meta``; no
  ``loaded`` (its record counts cover every tenant). The audit file is attached
  for the copy and detached before anything else runs. DuckDB has no per-table
  permissions: a view over an attached file would leave the base tables one
  qualified name away, so the scope holds copies and nothing else. The scratch
  database is a file in a private temporary directory, removed after the read:
  DuckDB keeps an in-memory table uncompressed (a million events would not fit
  the default memory limit), while a file's blocks are compressed and can be
  evicted.

An untrusted statement (``rspp audit sql``) then runs on a locked-down connection:
no file or network access (ATTACH, COPY, read_csv/read_parquet/read_text of the
database file), no extension loading, no Python replacement scans, and the
configuration locked so that no SET can undo it.

Every scope runs under :class:`Limits`: DuckDB's ``memory_limit`` and ``threads``,
no temp directory (nothing spills to disk, so the memory limit is hard), a
watchdog thread that interrupts the connection once the time limit has passed,
and a cap on the rows handed to Python (DuckDB's memory limit does not bound a
materialized result). A tenant's copy counts against the time and memory limits.
"""

from __future__ import annotations

import math
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from replay.audit.errors import AuditError, LimitExceededError, StoreError
from replay.audit.schema import check_version, create_views

__all__ = ["Limits", "Scope", "memory_bytes", "one_line", "open_scope"]

_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*")
_SOURCE = "audit_src"
# Lease grants are system rows, not another tenant's (who held a partition, at which
# epoch): T sees those of the partitions its sessions are on, so the leases report works.
_COPY = (
    f"CREATE TABLE events AS SELECT * FROM {_SOURCE}.events WHERE tenant_id = $tenant",
    f"CREATE TABLE dead_letters AS SELECT * FROM {_SOURCE}.dead_letters WHERE tenant_id = $tenant",
    f"""CREATE TABLE lease_grants AS SELECT * FROM {_SOURCE}.events
        WHERE event_type = 'LEASE_GRANTED' AND (source, partition) IN (
            SELECT DISTINCT source, partition FROM {_SOURCE}.events WHERE tenant_id = $tenant)""",
)
_LOCKDOWN = (
    "SET enable_external_access = false",
    "SET python_enable_replacements = false",
    "SET allow_community_extensions = false",
    "SET lock_configuration = true",  # last: after this no SET is accepted
)


def memory_bytes(size: str) -> int:
    """``size`` ("512MB", "2GiB") in bytes; :class:`AuditError` if it is not a size."""
    match = _SIZE.fullmatch(size)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    value = int(float(match.group(1)) * unit) if match and unit else 0
    if value <= 0:
        raise AuditError(f"--memory-limit {size!r}: expected a size such as 512MB or 2GB")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds of one audit read: wall time, DuckDB memory and threads, rows returned."""

    timeout_s: float = 60.0
    memory_limit: str = "1GB"
    threads: int = 2
    max_rows: int = 100_000

    def __post_init__(self) -> None:
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise AuditError(f"--timeout-s {self.timeout_s}: expected a positive number of seconds")
        memory_bytes(self.memory_limit)
        if self.threads < 1:
            raise AuditError(f"threads {self.threads}: expected at least 1")
        if self.max_rows < 1:
            raise AuditError(f"--max-rows {self.max_rows}: expected at least 1")

    def settings(self) -> dict[str, Any]:
        return {"memory_limit": f"{memory_bytes(self.memory_limit)}B", "threads": self.threads,
                "temp_directory": "", "autoinstall_known_extensions": False,
                "autoload_known_extensions": False}


class _Watchdog:
    """Interrupts ``con`` once ``timeout_s`` has passed, and keeps interrupting until the
    read ends: an interrupt that lands between two statements would otherwise be lost."""

    def __init__(self, con: Any, timeout_s: float) -> None:
        self._con, self._timeout_s = con, timeout_s
        self._done = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._run, name="audit-timeout", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._done.wait(self._timeout_s):
            return
        self.fired = True
        while True:
            self._con.interrupt()
            if self._done.wait(0.05):
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


@dataclass(frozen=True, slots=True)
class Scope:
    """An open read: ``con`` plus what is needed to name a failure by its limit."""

    con: Any
    limits: Limits
    watchdog: _Watchdog

    def failed(self, exc: duckdb.Error, what: str) -> AuditError | None:
        """The :class:`LimitExceededError` for ``exc`` if a limit stopped ``what``, else None."""
        if self.watchdog.fired:
            return LimitExceededError(
                f"{what} stopped at its time limit of {self.limits.timeout_s:g}s (--timeout-s)")
        if isinstance(exc, duckdb.OutOfMemoryException):
            return LimitExceededError(
                f"{what} stopped at its memory limit of {self.limits.memory_limit} (--memory-limit)")
        return None

    def rows(self, rel: Any, what: str) -> list[dict[str, Any]]:
        """At most ``max_rows`` rows of ``rel`` as dicts; more is a :class:`LimitExceededError`."""
        if rel is None:
            return []
        cap = self.limits.max_rows
        names = list(rel.columns)
        fetched = rel.limit(cap + 1).fetchall()  # DuckDB stops producing after cap + 1
        if len(fetched) > cap:
            raise LimitExceededError(f"{what} returned more than {cap:,} rows (--max-rows); "
                                     "aggregate, add a LIMIT or raise --max-rows")
        return [dict(zip(names, row, strict=True)) for row in fetched]


@contextmanager
def open_scope(path: Path, *, tenant: str | None, limits: Limits,
               untrusted: bool) -> Iterator[Scope]:
    """A connection for one read of ``path``: only ``tenant``'s rows if given, locked down
    if ``untrusted``, interrupted at ``limits.timeout_s``."""
    if not path.is_file():
        raise StoreError(f"{path}: no audit database (run `rspp audit load` first)")
    with ExitStack() as cleanup:
        if tenant is None:
            target, read_only = str(path), True
        else:
            scratch = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="rspp-audit-scope-"))
            target, read_only = str(Path(scratch) / "scope.duckdb"), False
        try:
            con = duckdb.connect(target, read_only=read_only, config=limits.settings())
        except duckdb.Error as exc:
            raise StoreError(f"{path}: cannot open audit database: {one_line(exc)}") from None
        with _prepared(con, path, tenant, limits, untrusted) as scope:
            yield scope


@contextmanager
def _prepared(con: Any, path: Path, tenant: str | None, limits: Limits,
              untrusted: bool) -> Iterator[Scope]:
    scope = Scope(con, limits, _Watchdog(con, limits.timeout_s))
    try:
        try:
            if tenant is None:
                check_version(con, path=str(path))
            else:
                _copy_tenant(con, path, tenant)
            for statement in _LOCKDOWN if untrusted else ():
                con.execute(statement)
        except duckdb.Error as exc:
            what = f"reading {path}" if tenant is None else f"scoping {path} to tenant {tenant}"
            raise scope.failed(exc, what) or StoreError(
                f"{path}: cannot read audit database: {one_line(exc)}") from None
        yield scope
    finally:
        scope.watchdog.stop()
        con.close()


def _copy_tenant(con: Any, path: Path, tenant: str) -> None:
    quoted = str(path).replace("'", "''")
    con.execute(f"ATTACH '{quoted}' AS {_SOURCE} (READ_ONLY)")
    try:
        check_version(con, path=str(path), catalog=_SOURCE)
        for statement in _COPY:
            con.execute(statement, {"tenant": tenant})
        con.execute(f"CREATE TABLE audit_meta AS SELECT * FROM {_SOURCE}.audit_meta")
    finally:
        con.execute(f"DETACH {_SOURCE}")
    create_views(con, grants_view=False)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
