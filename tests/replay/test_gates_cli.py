"""`rspp gates check` finds its packaged manifest from any working directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from replay.gates import DEFAULT_MANIFEST, load_gates

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_gates_check_runs_outside_the_repo(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(FIXTURES / "clean.avro", export)
    shutil.copytree(FIXTURES / "bundles", export / "bundles")
    done = subprocess.run(
        [sys.executable, "-c", "from streams.cli import main; main()",
         "gates", "check", "--from", "export", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode in (0, 1), done.stderr  # 1 = a gate failed, not "cannot run"
    assert "error" not in done.stderr, done.stderr
    report = orjson.loads(done.stdout)
    assert Path(report["manifest"]) == DEFAULT_MANIFEST
    assert [g["id"] for g in report["gates"]] == [g.id for g in load_gates(DEFAULT_MANIFEST).gates]
