"""Audit load rate: events/s of ``AuditStore.load_export`` vs DuckDB reading the same rows from Parquet.

The export is realistic voice traffic (``bench.replay_bench.build_log``: ~135
events per turn, real frozen plans, audio in and out). The baseline is the
ceiling for the same data once it is columnar: the loaded ``events`` table is
written to a plain Parquet file and read back into a fresh database with
``CREATE TABLE … AS SELECT * FROM read_parquet(…)``, in the same run. The
load itself is bounded by Avro decoding in Python, so the goal is absolute.

    .venv/bin/python -m bench.audit_bench [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["run"]

_GOAL_EPS = 20_000  # a million events (a busy day of one deployment) in under a minute


def _parquet_rate(db: Path, work: Path) -> tuple[float, int, int]:
    import duckdb

    parquet = work / "events.parquet"
    con = duckdb.connect(str(db), read_only=True)
    con.execute(f"COPY events TO '{parquet}' (FORMAT parquet)")
    con.close()
    fresh = duckdb.connect(str(work / "from_parquet.duckdb"))
    started = time.perf_counter()
    fresh.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{parquet}')")
    seconds = time.perf_counter() - started
    (count,) = fresh.execute("SELECT count(*) FROM events").fetchall()[0]
    fresh.close()
    return count / seconds, int(count), parquet.stat().st_size


def run(*, quick: bool) -> list[dict[str, Any]]:
    from bench.replay_bench import build_log
    from replay.audit import AuditStore

    target = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="rspp-audit-bench-") as tmp:
        work = Path(tmp)
        export = work / "export"
        export.mkdir()
        t0 = time.perf_counter()
        records = build_log(export / "bench.log.p0.avro", events=target)
        build_s = time.perf_counter() - t0
        db = work / "audit.duckdb"
        result = AuditStore(db).load_export(export)
        again = AuditStore(db).load_export(export)  # incremental: nothing new, all skipped
        t1 = time.perf_counter()
        turns = len(AuditStore(db).report("turns"))
        report_s = time.perf_counter() - t1
        baseline, count, parquet_bytes = _parquet_rate(db, work)
        db_bytes = db.stat().st_size
        avro_bytes = (export / "bench.log.p0.avro").stat().st_size
    assert result.events == records == count and again.events == 0 and again.skipped == records
    return [{
        "name": f"audit load (export -> DuckDB), {records:,} events",
        "unit": "events/s",
        "value": round(result.events_per_second, 1),
        "baseline": "DuckDB CREATE TABLE AS read_parquet, same rows",
        "baseline_value": round(baseline, 1),
        "goal": f">= {_GOAL_EPS:,} events/s",
        "extra": {"events": records, "load_s": round(result.seconds, 2),
                  "reload_noop_s": round(again.seconds, 2), "turns": turns,
                  "turns_report_s": round(report_s, 3), "avro_bytes": avro_bytes,
                  "duckdb_bytes": db_bytes, "parquet_bytes": parquet_bytes,
                  "build_s": round(build_s, 1),
                  "ratio": round(result.events_per_second / baseline, 4)},
    }]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
