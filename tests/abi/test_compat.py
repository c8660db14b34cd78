"""`rspp compat check`: modes, reports, sources (dir, git ref, registry), CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from streams.abi.compat import CompatMode, Previous, check_against, check_schemas
from streams.abi.compat.sources import mode_for
from streams.abi.errors import CompatSourceError
from streams.abi.schemas import avro_dir
from streams.cli import main


def rec(*fields: dict[str, object], name: str = "R") -> dict[str, object]:
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields)}


def f(name: str, type_: object, **kw: object) -> dict[str, object]:
    return {"name": name, "type": type_, **kw}


def _copy_avro(tmp_path: Path) -> Path:
    target = tmp_path / "avro"
    shutil.copytree(avro_dir(), target)
    return target


def _edit(directory: Path, file_name: str, change: object) -> None:
    path = directory / file_name
    document = json.loads(path.read_text())
    change(document)  # type: ignore[operator]
    path.write_text(json.dumps(document))


def test_three_version_chain_is_caught_only_transitively() -> None:
    v1 = rec(f("a", "int"))
    v2 = rec(f("a", "int"), f("b", "string", default="x"))  # pairwise fine
    v3 = rec(f("a", "int"), f("b", "string"))  # drops the default: v1 data (no b) is unreadable
    history = [Previous("v1", v1), Previous("v2", v2)]
    assert check_against(v2, history[:1], CompatMode.BACKWARD) == []
    assert check_against(v3, history, CompatMode.BACKWARD) == []
    found = check_against(v3, history, CompatMode.BACKWARD_TRANSITIVE)
    assert [(i.path, i.rule, i.against) for i in found] == [("R.b", "field added without default", "v1")]
    assert check_against(v3, history, CompatMode.FULL) == []
    assert [i.against for i in check_against(v3, history, CompatMode.FULL_TRANSITIVE)] == ["v1"]


@pytest.mark.parametrize(
    ("old", "new", "mode", "path", "rule"),
    [
        (rec(f("a", "int")), rec(f("a", "int"), f("b", "int")), CompatMode.BACKWARD, "R.b", "field added without default"),
        (rec(f("a", "int"), f("b", "int")), rec(f("a", "int")), CompatMode.FORWARD, "R.b", "field removed without default"),
        (rec(f("a", "long")), rec(f("a", "int")), CompatMode.BACKWARD, "R.a", "type changed long→int"),
        (rec(f("a", "int")), rec(f("a", "string")), CompatMode.FULL, "R.a", "type changed int→string"),
        (
            rec(f("e", {"type": "enum", "name": "E", "symbols": ["A", "B"]})),
            rec(f("e", {"type": "enum", "name": "E", "symbols": ["A"]})),
            CompatMode.BACKWARD, "R.e", "enum symbol removed",
        ),
        (
            rec(f("e", {"type": "enum", "name": "E", "symbols": ["A"]})),
            rec(f("e", {"type": "enum", "name": "E", "symbols": ["A", "B"]})),
            CompatMode.FORWARD, "R.e", "enum symbol added",
        ),
        (rec(f("u", ["null", "int", "string"])), rec(f("u", ["null", "int"])), CompatMode.BACKWARD, "R.u<string>", "union branch removed"),
        (
            rec(f("n", rec(f("x", "int"), name="Inner"))),
            rec(f("n", rec(f("x", "int"), f("y", "int"), name="Inner"))),
            CompatMode.BACKWARD, "R.n.y", "field added without default",
        ),
    ],
)
def test_reports_name_path_rule_and_version(
    old: dict[str, object], new: dict[str, object], mode: CompatMode, path: str, rule: str
) -> None:
    found = check_against(new, [Previous("v7", old)], mode)
    assert (path, rule) in [(i.path, i.rule) for i in found]
    assert all(i.against == "v7" for i in found)


def test_none_mode_checks_nothing() -> None:
    assert check_against(rec(f("a", "string")), [Previous("v1", rec(f("a", "int")))], CompatMode.NONE) == []


def test_mode_comes_from_the_version_skew_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    assert mode_for("rspp.events.Envelope", tmp_path / "missing.yaml") is CompatMode.BACKWARD_TRANSITIVE
    policy.write_text("other: 1\n")
    assert mode_for("x", policy) is CompatMode.BACKWARD_TRANSITIVE
    policy.write_text("schema_compatibility:\n  default: FORWARD\n  subjects:\n    rspp.events.Envelope: FULL_TRANSITIVE\n")
    assert mode_for("rspp.events.Envelope", policy) is CompatMode.FULL_TRANSITIVE
    assert mode_for("rspp.events.Other", policy) is CompatMode.FORWARD
    policy.write_text("schema_compatibility:\n  default: SIDEWAYS\n")
    with pytest.raises(CompatSourceError, match="SIDEWAYS"):
        mode_for("x", policy)


def test_unchanged_tree_passes_against_a_directory_copy(tmp_path: Path) -> None:
    report = check_schemas(avro_dir(), against=str(_copy_avro(tmp_path)))
    assert report.ok
    assert report.subjects[0].subject == "rspp.events.Envelope"
    assert report.subjects[0].checked_against


def test_dropping_a_field_without_default_fails_with_path_and_rule(tmp_path: Path) -> None:
    edited = _copy_avro(tmp_path)
    _edit(edited, "rspp.events.TurnAbort.avsc", lambda d: d.update(fields=[]))
    report = check_schemas(edited, against=str(avro_dir()), mode=CompatMode.FULL_TRANSITIVE)
    assert not report.ok
    lines = [i.line() for s in report.subjects for i in s.incompatibilities]
    assert any("Envelope.payload<TurnAbort>.reason: field removed without default" in line for line in lines)
    # BACKWARD alone allows removal (new readers skip the old field): the Avro rule, not ours.
    assert check_schemas(edited, against=str(avro_dir()), mode=CompatMode.BACKWARD).ok


def test_adding_a_required_field_fails_in_the_policy_mode(tmp_path: Path) -> None:
    edited = _copy_avro(tmp_path)
    _edit(edited, "rspp.events.Shed.avsc", lambda d: d["fields"].append({"name": "extra", "type": "int", "doc": "x"}))
    report = check_schemas(edited, against=str(avro_dir()))
    # The skew policy gates the envelope both ways: old logs and old consumers.
    assert report.subjects[0].mode is CompatMode.FULL_TRANSITIVE
    assert [(i.path, i.rule) for i in report.subjects[0].incompatibilities] == [
        ("Envelope.payload<Shed>.extra", "field added without default")
    ]


def test_dropping_a_field_without_default_fails_in_the_policy_mode(tmp_path: Path) -> None:
    edited = _copy_avro(tmp_path)
    _edit(edited, "rspp.events.TurnAbort.avsc", lambda d: d.update(fields=[]))
    report = check_schemas(edited, against=str(avro_dir()))
    assert [(i.path, i.rule) for i in report.subjects[0].incompatibilities] == [
        ("Envelope.payload<TurnAbort>.reason", "field removed without default")
    ]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_against_git_ref(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(avro_dir(), repo / "avro")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", "avro")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "abi")
    assert check_schemas(repo / "avro", against="git:HEAD").ok
    _edit(repo / "avro", "rspp.events.Correlation.avsc", lambda d: d["fields"][0].update(type="int"))
    report = check_schemas(repo / "avro", against="git:HEAD")
    assert not report.ok
    found = report.subjects[0].incompatibilities
    assert {(i.path, i.rule) for i in found} == {("Envelope.correlation.correlation_id", "type changed string→int")}
    assert all("git:HEAD" in i.against for i in found)
    with pytest.raises(CompatSourceError, match="no-such-ref"):
        check_schemas(repo / "avro", against="git:no-such-ref")


def test_cli_exit_codes_json_and_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited = _copy_avro(tmp_path)
    # Without its default the new enum cannot map old "telemetry" values anywhere.
    _edit(edited, "rspp.events.Lane.avsc", lambda d: (d.update(symbols=["control", "data"]), d.pop("default")))
    junit = tmp_path / "compat.xml"
    with pytest.raises(SystemExit) as exit_info:
        main(["compat", "check", str(edited), "--against", str(avro_dir()), "--json", "--junit", str(junit)])
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["ok"] is False
    problem = document["subjects"][0]["incompatibilities"][0]
    assert problem["path"] == "Envelope.lane" and problem["rule"] == "enum symbol removed"
    assert "rspp: error:" in err
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "1"
    assert "enum symbol removed" in (suite.find("testcase/failure").text or "")  # type: ignore[union-attr]
    with pytest.raises(SystemExit) as ok_exit:
        main(["compat", "check", str(avro_dir()), "--against", str(avro_dir())])
    assert ok_exit.value.code in (0, None)
    assert "compatible:" in capsys.readouterr().out
