"""Broken artifacts produce exactly the expected one-line errors (golden file)."""

from __future__ import annotations

from typer.testing import CliRunner

from pipelines.validate import validate_paths
from streams.cli import _register, app
from tests.artifacts.conftest import FIXTURES

BROKEN = FIXTURES / "broken"


def _expected() -> list[str]:
    return (FIXTURES / "broken.expected").read_text().splitlines()


def test_broken_fixtures_give_the_golden_lines() -> None:
    _, issues = validate_paths([BROKEN])
    lines = sorted(str(i).replace(f"{BROKEN}/", "") for i in issues)
    assert lines == _expected()


def test_every_broken_fixture_is_reported() -> None:
    reported = {line.split(":", 1)[0] for line in _expected()}
    assert reported == {p.name for p in BROKEN.iterdir()}


def test_cli_validate_prints_all_problems_and_exits_1(monkeypatch: object) -> None:
    _register()
    result = CliRunner().invoke(app, ["validate", str(BROKEN)])
    assert result.exit_code == 1
    err = sorted(line.replace(f"{BROKEN}/", "") for line in result.stderr.splitlines())
    assert err == _expected()
    assert "Traceback" not in result.output
