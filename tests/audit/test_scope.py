"""Tenant scopes and limits of audit reads, on an export of a two-tenant log (no broker).

The hostile statements are what a tenant's auditor could try to get past
``--tenant``: name the base tables by a qualified name, re-attach or read the
database file, change settings, load an extension. Each must fail or return
nothing of the other tenant.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from replay.audit import (
    AuditError,
    AuditStore,
    LimitExceededError,
    Limits,
    QueryError,
    StoreError,
    WriteRefusedError,
)
from replay.testing import write_log
from streams.abi.events import Envelope
from streams.cli import main
from tests.audit import two_tenants as tt

# Eight copies of a 43-row table: 10^13 rows, far beyond any time limit used here.
RUNAWAY = "SELECT count(*) FROM " + ", ".join(f"events e{i}" for i in range(8))
# Strings built from a cross join, aggregated into one: hundreds of MB of state.
HOG = ("SELECT string_agg(a.event_id || b.event_id || c.event_id || d.event_id, ',') "
       "FROM events a, events b, events c, events d")


@pytest.fixture(scope="module")
def log() -> list[Envelope]:
    return tt.shared_session_log()


@pytest.fixture(scope="module")
def db(log: list[Envelope], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("two-tenants")
    write_log(log, directory / "golden.log.p0.avro", prefix=tt.PREFIX)
    path = directory / "audit.duckdb"
    AuditStore(path).load_export(directory)
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    code = info.value.code
    return (0 if code is None else int(code)), capsys.readouterr().err


def test_a_tenant_query_sees_only_that_tenants_rows(log: list[Envelope], db: Path) -> None:
    store = AuditStore(db)
    everything = store.sql("SELECT tenant_id, count(*) AS n FROM events GROUP BY ALL ORDER BY 1")
    assert [r["tenant_id"] for r in everything] == ["__system__", "acme", "globex"]
    for tenant in tt.TENANTS:
        want = sum(1 for e in log if e.tenant_id == tenant)
        rows = store.sql("SELECT tenant_id, count(*) AS n FROM events GROUP BY ALL", tenant=tenant)
        assert rows == [{"tenant_id": tenant, "n": want}]
        turns = store.sql("SELECT DISTINCT tenant_id, turn_id FROM v_turn_opens ORDER BY 2",
                          tenant=tenant)
        assert turns == [{"tenant_id": tenant, "turn_id": t}
                         for t in (("t1",) if tenant == "acme" else ("t1", "t2"))]
        # Lease grants (system rows) of the partition its session is on, nothing else.
        assert store.sql("SELECT DISTINCT tenant_id FROM lease_grants", tenant=tenant) == [
            {"tenant_id": "__system__"}]
    # `loaded` counts every tenant's records: it is not part of a tenant's scope.
    with pytest.raises(QueryError, match="loaded"):
        store.sql("SELECT * FROM loaded", tenant="acme")


def _db_literal(db: Path) -> str:
    return str(db).replace("'", "''")


HOSTILE: list[tuple[str, str]] = [
    # Qualified names of the file the scope was copied from (the alias it used, the
    # file's default catalog name) and of the scope's own database.
    ("SELECT count(*) AS n FROM audit_src.events", "error"),
    ("SELECT count(*) AS n FROM audit.events", "error"),
    ("SELECT count(*) AS n FROM audit.main.events", "error"),
    ("SELECT * FROM scope.main.events WHERE tenant_id = 'globex'", "rows"),
    ("SELECT * FROM query_table('audit_src.events')", "error"),
    ("SELECT * FROM duckdb_databases()", "rows"),
    ("SELECT * FROM duckdb_tables()", "rows"),
    # The database file itself, through every reader.
    ("SELECT * FROM read_parquet('{db}')", "error"),
    ("SELECT * FROM read_csv('{db}')", "error"),
    ("SELECT * FROM read_text('{db}')", "error"),
    ("SELECT * FROM read_blob('{db}')", "error"),
    ("SELECT * FROM '{db}'", "error"),
    ("SELECT * FROM glob('{db}*')", "error"),
    ("SELECT * FROM query('SELECT * FROM read_blob(''{db}'')')", "error"),
    ("SELECT * FROM sqlite_scan('{db}', 'events')", "error"),
    ("ATTACH '{db}' AS theirs (READ_ONLY)", "refused"),
    ("COPY (SELECT 1) TO '{db}.out.csv'", "refused"),
    # Settings, pragmas and extensions that would lift the lock.
    ("SET enable_external_access = true", "refused"),
    ("RESET lock_configuration", "refused"),
    ("USE memory", "refused"),
    ("PRAGMA database_list", "refused"),
    ("CALL duckdb_settings()", "refused"),
    ("LOAD sqlite", "refused"),
    ("INSTALL sqlite", "refused"),
    ("UPDATE EXTENSIONS", "refused"),
    ("EXPORT DATABASE '{db}.dump'", "refused"),
    ("SELECT current_setting('enable_external_access') AS v", "rows"),
]


@pytest.mark.parametrize(("template", "outcome"), HOSTILE, ids=[h[0][:40] for h in HOSTILE])
def test_hostile_queries_do_not_leave_the_tenant_scope(db: Path, template: str, outcome: str) -> None:
    query = template.format(db=_db_literal(db))
    store = AuditStore(db)
    if outcome == "rows":
        rows = store.sql(query, tenant="acme")
        assert "globex" not in str(rows) and str(db) not in str(rows)
        if "current_setting" in query:
            assert rows == [{"v": False}]
        return
    expected: type[AuditError] = WriteRefusedError if outcome == "refused" else QueryError
    with pytest.raises(expected) as info:
        store.sql(query, tenant="acme")
    assert "\n" not in str(info.value) and "globex" not in str(info.value)
    assert not Path(f"{db}.out.csv").exists() and not Path(f"{db}.dump").exists()


def test_scratch_databases_are_removed_and_the_tenant_is_a_value(
        db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    store = AuditStore(db)
    # The tenant is bound as a value, never spliced into SQL.
    assert store.sql("SELECT count(*) AS n FROM events", tenant="acme' OR '1'='1") == [{"n": 0}]
    with pytest.raises(LimitExceededError):
        store.sql(RUNAWAY, tenant="acme", limits=Limits(timeout_s=0.5))
    with pytest.raises(QueryError):
        store.sql("SELECT * FROM audit_src.events", tenant="acme")
    assert store.report("sheds", tenant="globex")[0]["shed_count"] == 3
    assert list(tmp_path.iterdir()) == []


def test_hostile_queries_fail_in_one_line_on_the_command_line(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for query, want in ((f"SELECT * FROM read_blob('{_db_literal(db)}')", "disabled"),
                        ("SELECT count(*) FROM audit.events", "does not exist"),
                        ("SET lock_configuration = false", "refused")):
        code, err = _cli(capsys, "audit", "sql", query, "--tenant", "acme", "--db", str(db))
        assert code == 1 and err.count("\n") == 1 and err.startswith("rspp: error:"), err
        assert want in err


@pytest.mark.parametrize("tenant", [None, "acme"])
def test_a_runaway_cross_join_stops_at_its_time_limit(db: Path, tenant: str | None) -> None:
    with pytest.raises(LimitExceededError, match=r"time limit of 0\.5s \(--timeout-s\)"):
        AuditStore(db).sql(RUNAWAY, tenant=tenant, limits=Limits(timeout_s=0.5))
    # The connection was interrupted and closed: the database answers the next query.
    assert AuditStore(db).sql("SELECT count(*) AS n FROM v_cancels", tenant=tenant) == [{"n": 1}]


def test_limits_on_the_command_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(capsys, "audit", "sql", RUNAWAY, "--tenant", "globex", "--db", str(db),
                     "--timeout-s", "0.5")
    assert code == 1 and err.count("\n") == 1 and "time limit" in err
    code, err = _cli(capsys, "audit", "sql", HOG, "--db", str(db), "--memory-limit", "24MB")
    assert code == 1 and err.count("\n") == 1 and "memory limit of 24MB" in err
    code, err = _cli(capsys, "audit", "report", "turns", "--db", str(db), "--max-rows", "2")
    assert code == 1 and err.count("\n") == 1 and "more than 2 rows" in err
    for flag, value in (("--memory-limit", "lots"), ("--timeout-s", "0"), ("--max-rows", "0")):
        code, err = _cli(capsys, "audit", "sql", "SELECT 1", "--db", str(db), flag, value)
        assert code == 2 and err.count("\n") == 1 and flag in err, (flag, err)


@pytest.mark.parametrize("tenant", [None, "globex"])
def test_a_query_over_its_memory_limit_stops(db: Path, tenant: str | None) -> None:
    with pytest.raises(LimitExceededError, match=r"memory limit of 24MB \(--memory-limit\)"):
        AuditStore(db).sql(HOG, tenant=tenant, limits=Limits(memory_limit="24MB"))
    with pytest.raises(LimitExceededError, match="more than 10 rows"):
        AuditStore(db).sql("SELECT * FROM range(1000000000000)", tenant=tenant,
                           limits=Limits(max_rows=10))


def test_copying_a_tenant_scope_counts_against_the_memory_limit(db: Path) -> None:
    with pytest.raises(LimitExceededError, match=r"scoping .* to tenant acme stopped at its memory"):
        AuditStore(db).sql("SELECT 1", tenant="acme", limits=Limits(memory_limit="1MB"))


def test_a_non_utf8_query_fails_in_one_line(db: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # The bytes exactly as a shell passes them: argv is decoded with surrogateescape.
    entry = "import sys; from streams.cli import main; main(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", entry, "audit", "sql", b"SELECT '\xff'",
                           "--db", str(db)], capture_output=True, check=False)
    assert done.returncode == 1 and done.stderr.count(b"\n") == 1, done.stderr
    assert b"query is not valid UTF-8: byte 0xff at character 8" in done.stderr
    query = tmp_path / "q.sql"
    query.write_bytes(b"SELECT 'caf\xe9'")  # Latin-1
    code, err = _cli(capsys, "audit", "sql", "--file", str(query), "--db", str(db))
    assert code == 1 and err.count("\n") == 1
    assert f"{query}: query is not valid UTF-8: byte 0xe9 at offset 11" in err
    code, err = _cli(capsys, "audit", "sql", "--file", str(tmp_path / "none.sql"), "--db", str(db))
    assert code == 1 and "none.sql: cannot read query" in err and err.count("\n") == 1
    query.write_text("SELECT count(*) AS n FROM events", encoding="utf-8")
    code, err = _cli(capsys, "audit", "sql", "--file", str(query), "--tenant", "acme",
                     "--db", str(db), "--format", "csv")
    assert code == 0
    code, err = _cli(capsys, "audit", "sql", "SELECT 1", "--file", str(query), "--db", str(db))
    assert code == 2 and "not both" in err


def test_reads_refuse_a_database_of_another_schema_version(tmp_path: Path) -> None:
    db = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE audit_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO audit_meta VALUES ('schema_version', '1')")
    con.close()
    reads: list[Callable[[], object]] = [
        lambda: AuditStore(db).sql("SELECT 1"),
        lambda: AuditStore(db).sql("SELECT 1", tenant="acme"),
        lambda: AuditStore(db).report("dlq", tenant="acme"),
    ]
    for read in reads:
        with pytest.raises(StoreError, match="schema version 1"):
            read()
