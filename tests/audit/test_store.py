"""The audit store on container exports (no broker): incremental loads, views, read-only SQL."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from replay.audit import VIEWS, AuditStore, QueryError, StoreError, WriteRefusedError
from replay.testing import write_log
from streams.abi.events import PAYLOAD_TYPES, Envelope
from streams.cli import main
from tests.replay import gen_fixtures as gen


@pytest.fixture(scope="module")
def log() -> list[Envelope]:
    return gen.clean_log()


def _export(events: list[Envelope], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_log(events, directory / "golden.log.p0.avro", prefix=gen.PREFIX)
    return directory


def test_export_loads_are_incremental_and_never_duplicate(log: list[Envelope], tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "a.duckdb")
    first = store.load_export(_export(log[:30], tmp_path / "x1"))
    assert (first.events, first.skipped) == (30, 0)
    # A later export of the same log holds the first 30 records again, then the new ones.
    second = store.load_export(_export(log, tmp_path / "x2"))
    assert (second.events, second.skipped) == (len(log) - 30, 30)
    assert store.load_export(tmp_path / "x2").events == 0
    rows = store.sql('SELECT event_id FROM events ORDER BY "offset"')
    assert [r["event_id"] for r in rows] == [e.event_id for e in log]
    assert store.loaded()[0]["records"] == len(log)


def test_every_payload_type_has_a_view_with_its_fields(log: list[Envelope], tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "a.duckdb")
    store.load_export(_export(log, tmp_path / "x"))
    assert set(VIEWS.values()) == set(PAYLOAD_TYPES.values())
    for view, cls in VIEWS.items():
        want = sum(1 for e in log if type(e.payload) is cls)
        assert store.sql(f"SELECT count(*) AS n FROM {view}") == [{"n": want}], view
    (row,) = store.sql("SELECT scope, target, reason FROM v_cancels")
    assert row == {"scope": "TURN", "target": "t2", "reason": "barge-in"}
    audio = store.sql("SELECT DISTINCT data_bytes FROM v_node_outputs WHERE kind = 'audio'")
    assert audio == [{"data_bytes": 32}]  # binary payloads are stored as their length
    assert {r["epoch"] for r in store.sql("SELECT epoch FROM v_leases")} == {1, 2}


@pytest.mark.parametrize("statement", [
    "INSERT INTO events SELECT * FROM events",
    "DELETE FROM events",
    "UPDATE loaded SET next_offset = 0",
    "DROP VIEW v_cancels",
    "CREATE TABLE x AS SELECT 1",
    "COPY events TO 'leak.csv'",
    "ATTACH 'other.duckdb'",
    "SET threads = 1",
])
def test_write_statements_are_refused(log: list[Envelope], tmp_path: Path, statement: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "a.duckdb"
    AuditStore(db).load_export(_export(log, tmp_path / "x"))
    with pytest.raises(WriteRefusedError, match="read-only"):
        AuditStore(db).sql(statement)
    with pytest.raises(SystemExit) as info:
        main(["audit", "sql", statement, "--db", str(db)])
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.count("\n") == 1 and "refused" in err
    assert AuditStore(db).sql("SELECT count(*) AS n FROM events") == [{"n": len(log)}]
    assert not (tmp_path / "leak.csv").exists()


def test_sql_cannot_reach_files_and_bad_sql_is_one_line(log: list[Envelope], tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    AuditStore(db).load_export(_export(log, tmp_path / "x"))
    with pytest.raises(QueryError, match="disabled"):
        AuditStore(db).sql("SELECT * FROM read_csv('/etc/hostname')")
    with pytest.raises(QueryError, match="no_such_column"):
        AuditStore(db).sql("SELECT no_such_column FROM events")
    with pytest.raises(StoreError, match="no audit database"):
        AuditStore(tmp_path / "missing.duckdb").sql("SELECT 1")


def test_reports_export_to_csv_and_parquet(log: list[Envelope], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "a.duckdb"
    store = AuditStore(db)
    store.load_export(_export(log, tmp_path / "x"))
    turns = store.report("turns")
    assert [t["outcome"] for t in turns] == ["COMMITTED", "ABORTED", "ABORTED", "COMMITTED"]
    for suffix in ("csv", "parquet"):
        out = tmp_path / f"turns.{suffix}"
        with pytest.raises(SystemExit) as info:
            main(["audit", "report", "turns", "--db", str(db), "--tenant", "acme", "--out", str(out)])
        assert info.value.code in (None, 0)
        back = duckdb.connect().execute(
            f"SELECT turn_id, open_to_first_output_us FROM '{out}'").fetchall()
        assert back == [(t["turn_id"], t["open_to_first_output_us"]) for t in turns]
    since = store.report("turns", since=turns[2]["opened_at"])
    assert [t["turn_id"] for t in since] == ["t3", "t4"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["audit", "report", "nope", "--db", str(db)])
    assert info.value.code == 1 and "unknown report 'nope'" in capsys.readouterr().err


def test_a_log_is_loaded_from_one_kind_of_source_only(log: list[Envelope], tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    AuditStore(db).load_export(_export(log[:10], tmp_path / "x"))
    con = duckdb.connect(str(db))
    con.execute("UPDATE loaded SET kind = 'kafka', source = 'golden.log'")  # as if read from Kafka
    con.close()
    with pytest.raises(StoreError, match=r"golden\.log is already loaded from golden\.log"):
        AuditStore(db).load_export(tmp_path / "x")


def test_a_database_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE audit_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO audit_meta VALUES ('schema_version', '0')")
    con.close()
    with pytest.raises(StoreError, match="schema version 0"):
        AuditStore(db).load_export(_export(gen.clean_log()[:3], tmp_path / "x"))
