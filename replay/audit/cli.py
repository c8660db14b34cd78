"""``rspp audit``: load the log into DuckDB, run canned reports, ask it SQL.

Exit codes: 0 ok; 1 the statement was refused, failed or hit a limit; 2 could not run
(no database, unreachable broker, unreadable export). Errors are one line.
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from replay.audit.errors import AuditError, QueryError
from replay.audit.reports import REPORTS
from replay.audit.scope import Limits
from replay.audit.store import AuditStore
from streams.output import console, err_console

__all__ = ["app"]

app = typer.Typer(help="SQL over the event log (DuckDB): load, canned reports, ad-hoc queries.",
                  no_args_is_help=True)

DbOpt = Annotated[Path, typer.Option("--db", help="The audit database file.")]
FormatOpt = Annotated[str, typer.Option("--format", help="table, json or csv.")]
_DEFAULT = Limits()
TimeoutOpt = Annotated[float, typer.Option(
    "--timeout-s", help="Stop the read after this many seconds (exit 1).")]
MemoryOpt = Annotated[str, typer.Option(
    "--memory-limit", help="DuckDB memory limit for the read, e.g. 512MB, 2GB (exit 1 past it).")]
MaxRowsOpt = Annotated[int, typer.Option(
    "--max-rows", help="Refuse a result of more rows than this (exit 1).")]
_FORMATS = ("table", "json", "csv")


@app.command("load")
def load_cmd(
    db: DbOpt = Path("audit.duckdb"),
    prefix: Annotated[str | None, typer.Option(
        "--prefix", help="Deployment prefix: loads <prefix>.log and <prefix>.dlq.")] = None,
    from_: Annotated[Path | None, typer.Option(
        "--from", help="An `rspp export` directory or .avro container file.")] = None,
    bootstrap: Annotated[str | None, typer.Option(
        "--bootstrap", help="Kafka bootstrap (default RSPP_BOOTSTRAP, else the local broker).")] = None,
    dlq: Annotated[bool, typer.Option("--dlq/--no-dlq", help="Also load <prefix>.dlq.")] = True,
) -> None:
    """Load new log records into the database (incremental: re-running adds only new events)."""
    store = AuditStore(db)
    if (prefix is None) == (from_ is None):
        raise AuditError("give exactly one of --prefix (read Kafka) or --from (an export)")
    if from_ is not None:
        result = store.load_export(from_)
    else:
        assert prefix is not None
        from streams.cluster import resolve_bootstrap

        try:
            address = resolve_bootstrap(bootstrap)
        except Exception as exc:  # any broker problem is "could not run"
            raise AuditError(f"cannot reach Kafka for prefix {prefix}: {exc}") from None
        result = store.load_kafka(address, prefix, dlq=dlq)
    console.print(f"loaded {result.events:,} events and {result.dead_letters:,} dead letters from "
                  f"{result.source} into {db} ({result.skipped:,} already loaded, "
                  f"{result.events_per_second:,.0f} events/s)", highlight=False)


@app.command("report")
def report_cmd(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(REPORTS)}.")],
    db: DbOpt = Path("audit.duckdb"),
    since: Annotated[str | None, typer.Option(
        "--since", help="Only rows at/after this time (ISO-8601; UTC unless it has a zone).")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's rows.")] = None,
    session: Annotated[str | None, typer.Option("--session", help="Only this session.")] = None,
    fmt: FormatOpt = "table",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write to FILE instead (.csv or .parquet, via DuckDB COPY).")] = None,
    timeout_s: TimeoutOpt = _DEFAULT.timeout_s,
    memory_limit: MemoryOpt = _DEFAULT.memory_limit,
    max_rows: MaxRowsOpt = _DEFAULT.max_rows,
) -> None:
    """Run a canned report (turns, cancels, sheds, dlq, leases, bundles_by_session, node_latency).

    --tenant: the report runs in a database that holds only that tenant's rows.
    """
    store = AuditStore(db)
    when = _when(since)
    _check_format(fmt)
    limits = Limits(timeout_s=timeout_s, memory_limit=memory_limit, max_rows=max_rows)
    if out is not None:
        count = store.export_report(name, out, tenant=tenant, session=session, since=when,
                                    limits=limits)
        err_console.print(f"wrote {count:,} rows of {name} to {out}", highlight=False)
        return
    rows = store.report(name, tenant=tenant, session=session, since=when, limits=limits)
    _emit(rows, fmt, title=name)


@app.command("sql")
def sql_cmd(
    query: Annotated[str | None, typer.Argument(
        help="One read-only statement (SELECT/WITH/SHOW/...).", show_default=False)] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", help="Read the statement from FILE (UTF-8) instead.")] = None,
    db: DbOpt = Path("audit.duckdb"),
    tenant: Annotated[str | None, typer.Option(
        "--tenant", help="Query a database that holds only this tenant's rows.")] = None,
    fmt: FormatOpt = "table",
    timeout_s: TimeoutOpt = _DEFAULT.timeout_s,
    memory_limit: MemoryOpt = _DEFAULT.memory_limit,
    max_rows: MaxRowsOpt = _DEFAULT.max_rows,
) -> None:
    """Run one read-only SQL query; statements that write are refused (exit 1).

    No file or network access. --tenant: only that tenant's rows exist for the query.
    """
    if query is not None and file is not None:
        raise AuditError("give QUERY or --file, not both")
    _check_format(fmt)
    limits = Limits(timeout_s=timeout_s, memory_limit=memory_limit, max_rows=max_rows)
    if query is not None:
        text = query
    elif file is not None:
        text = _read_query(file)
    else:
        raise AuditError("give a QUERY or --file FILE")
    _emit(AuditStore(db).sql(text, tenant=tenant, limits=limits), fmt, title=None)


def _read_query(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise QueryError(f"{path}: cannot read query: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QueryError(f"{path}: query is not valid UTF-8: byte 0x{data[exc.start]:02x} "
                         f"at offset {exc.start}") from None


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(f"--since {value!r} is not an ISO-8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_format(fmt: str) -> None:
    if fmt not in _FORMATS:
        raise QueryError(f"--format {fmt!r}: expected one of {', '.join(_FORMATS)}")


def _emit(rows: list[dict[str, Any]], fmt: str, *, title: str | None) -> None:
    if fmt == "json":
        # Column order is the report's, so no key sorting; ts columns are naive UTC.
        sys.stdout.buffer.write(orjson.dumps(rows, default=str, option=(
            orjson.OPT_INDENT_2 | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)) + b"\n")
        return
    names = list(rows[0]) if rows else []
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_cell(v) for v in row.values()] for row in rows)
        return
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for name in names:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    console.print(table)
    err_console.print(f"{len(rows):,} row(s)", highlight=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds") + ("" if value.tzinfo else "Z")
    return str(value)
