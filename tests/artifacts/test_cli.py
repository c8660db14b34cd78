"""The `rspp` pipeline commands, end to end through the typer app."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from pipelines.shipped import PIPELINES_DIR
from streams.cli import _register, app, main

P = PIPELINES_DIR
SPEC, PROFILE = str(P / "specs/simple_v1.yaml"), str(P / "profiles/simple_v1.yaml")
POLICY = str(P / "policies/default_voice_policy_v1.yaml")
BUNDLE = P / "bundles/voice_assistant_bundle_v1.json"


def _run(*args: str) -> Result:
    _register()
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_validate_shipped_tree() -> None:
    result = _run("validate", str(P))
    assert result.exit_code == 0, result.output
    assert "16 artifacts valid" in result.stdout


def test_compile_table_shows_value_and_source() -> None:
    result = _run("compile", "--spec", SPEC, "--profile", PROFILE, "--policy", POLICY)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "nodes.stt.timeout_ms" in line]
    assert rows and "10000" in rows[0] and "policy:default_voice" in rows[0]
    for source in ("spec", "profile", "module default", "simple/v1 default"):
        assert source in result.stdout


def test_compile_json_round_trips() -> None:
    result = _run("compile", "--spec", SPEC, "--profile", PROFILE, "--json")
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["turn"]["boundary"] == {"value": "either", "source": "spec"}


def test_compile_errors_point_at_file_and_line(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(Path(SPEC).read_text().replace("target: tts\n", "target: ghost\n"))
    result = _run("compile", "--spec", str(spec), "--profile", PROFILE)
    assert result.exit_code == 1
    assert f"{spec}:" in result.stderr and "unknown node 'ghost'" in result.stderr
    assert "Traceback" not in result.output


def test_bundle_build_verify_show_and_immutability(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, out = tmp_path / "store", tmp_path / "b.json"
    args = ("bundle", "build", "--spec", SPEC, "--profile", PROFILE, "--policy", POLICY, "--name", "voice_assistant",
            "--version", "1.0.0", "--store", str(store), "--out", str(out),
            "--description", "simple/v1 voice assistant: pocketsphinx grammar, rules, espeak-ng.")
    built = _run(*args)
    assert built.exit_code == 0, built.output
    assert out.read_bytes() == BUNDLE.read_bytes()  # the shipped bundle is exactly what the CLI builds
    assert _run("bundle", "verify", "voice_assistant@1.0.0", "--store", str(store)).exit_code == 0
    assert _run("bundle", "verify", str(BUNDLE), "--sources", str(P)).exit_code == 0
    show = _run("bundle", "show", str(BUNDLE), "--json")
    assert orjson.loads(show.stdout)["digest"] == orjson.loads(BUNDLE.read_bytes())["digest"]
    with pytest.raises(SystemExit) as exit_:
        main([*args[:-1], "different description"])  # same name@version, other content
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.startswith("rspp: error: PipelineBundle voice_assistant@1.0.0 is already")
    assert orjson.loads(BUNDLE.read_bytes())["digest"] in err and len(err.strip().splitlines()) == 1


def test_bundle_verify_catches_tampering(tmp_path: Path) -> None:
    data = orjson.loads(BUNDLE.read_bytes())
    data["resolved_spec"]["turn"]["timeout_ms"]["value"] = 1
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps(data))
    result = _run("bundle", "verify", str(bad))
    assert result.exit_code == 1 and "digest mismatch" in result.stderr


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_rollout_resolve_is_stable(json_flag: tuple[str, ...]) -> None:
    first = _run("rollout", "resolve", "--session", "s-42", "--tenant", "acme", *json_flag)
    second = _run("rollout", "resolve", "--session", "s-42", "--tenant", "acme", *json_flag)
    assert first.exit_code == 0 and first.stdout == second.stdout
    assert "voice_assistant@1." in first.stdout and "bucket" in first.stdout


def test_rollout_resolve_with_pins(tmp_path: Path) -> None:
    pins = tmp_path / "pins.json"
    _run("rollout", "resolve", "--session", "s", "--tenant", "t", "--pins", str(pins))
    again = _run("rollout", "resolve", "--session", "s", "--tenant", "t", "--pins", str(pins), "--json")
    assert orjson.loads(again.stdout)["pinned"] is True
