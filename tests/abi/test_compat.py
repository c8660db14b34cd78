"""`rspp compat check`: modes, reports, sources (dir, git ref, registry), CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from streams.abi.compat import CompatMode, Previous, PreviousVersions, check_against, check_schemas
from streams.abi.compat.sources import mode_for
from streams.abi.errors import CompatSourceError, SchemaError
from streams.abi.registry import ConfluentRegistry
from streams.abi.schemas import SchemaSet, avro_dir
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


# --- any schema is a subject; nothing checked never passes; removed and renamed subjects ---------


def _write(directory: Path, files: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, schema in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(json.dumps(schema))
    return directory


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["compat", "check", *args])
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), out, err


def test_the_event_abi_passes_against_its_last_release(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys)
    assert code == 0, err
    assert "ok   rspp.events.Envelope [FULL_TRANSITIVE] against 1 previous version(s)" in out


@pytest.mark.parametrize(
    ("old", "new", "mode", "reason"),
    [
        ({"type": "fixed", "name": "F", "size": 8}, {"type": "fixed", "name": "F", "size": 4}, "BACKWARD", "F: fixed size changed 8→4"),
        ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, {"type": "enum", "name": "E", "symbols": ["A"]}, "BACKWARD", "E: enum symbol removed"),
        ("int", "long", "BACKWARD", None),
        ("int", "long", "FORWARD", "s: type changed int→long"),
        ("bytes", "string", "FULL", None),
        ({"type": "array", "items": "int"}, {"type": "array", "items": "string"}, "BACKWARD", "s[]: type changed int→string"),
        ({"type": "map", "values": "int"}, {"type": "map", "values": "double"}, "BACKWARD", None),
        (["null", "int"], ["null", "int", "string"], "BACKWARD", None),
        (["null", "int", "string"], ["null", "int"], "BACKWARD", "s<string>: union branch removed"),
    ],
)
def test_top_level_non_records_are_subjects(
    tmp_path: Path, old: object, new: object, mode: str, reason: str | None
) -> None:
    stem = old["name"] if isinstance(old, dict) and "name" in old else "s"
    _write(tmp_path / "old", {f"{stem}.avsc": old})
    _write(tmp_path / "new", {f"{stem}.avsc": new})
    report = check_schemas(tmp_path / "new" / f"{stem}.avsc", against=str(tmp_path / "old"), mode=CompatMode(mode))
    assert [s.subject for s in report.subjects] == [stem]
    assert report.subjects[0].checked_against  # compared with the old version, not skipped
    assert report.ok is (reason is None)  # a reason is given exactly for the breaking changes
    if reason is not None:
        assert any(reason in i.line() for i in report.subjects[0].incompatibilities)


def test_nothing_checked_fails_in_one_line_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "old", {"Other.avsc": {"type": "enum", "name": "Other", "symbols": ["A"]}})
    new = _write(tmp_path / "new", {"Fresh.avsc": {"type": "fixed", "name": "Fresh", "size": 2}}) / "Fresh.avsc"
    code, out, err = _cli(capsys, str(new), "--against", str(tmp_path / "old"))
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("rspp: error: nothing checked: no previous version of Fresh")
    assert "compatible:" not in out and "NOT CHECKED" in out
    code, out, _ = _cli(capsys, str(new), "--against", str(tmp_path / "old"), "--json")
    assert code == 1 and json.loads(out)["ok"] is False and "Fresh" in json.loads(out)["nothing_checked"]
    code, out, err = _cli(capsys, str(new), "--against", str(tmp_path / "old"), "--allow-empty")
    assert (code, err) == (0, "")
    empty = _write(tmp_path / "empty", {})
    with pytest.raises(SchemaError, match=r"no \.avsc files"):
        check_schemas(empty, against=str(tmp_path / "old"))


EVT_V1 = rec(f("a", "int"), name="Evt")


@pytest.mark.parametrize("mode", list(CompatMode))
def test_a_removed_or_renamed_subject_fails_in_every_mode_but_none(tmp_path: Path, mode: CompatMode) -> None:
    _write(tmp_path / "old", {"Evt.avsc": EVT_V1, "Keep.avsc": rec(name="Keep")})
    renamed = _write(tmp_path / "renamed", {"Evt.avsc": rec(f("a", "int"), name="Event"), "Keep.avsc": rec(name="Keep")})
    report = check_schemas(renamed, against=str(tmp_path / "old"), mode=mode)
    removed = [s for s in report.subjects if s.removed]
    assert [s.subject for s in removed] == ["t.Evt"]
    assert report.ok is (mode is CompatMode.NONE)
    if mode is not CompatMode.NONE:
        (problem,) = removed[0].incompatibilities
        assert problem.rule == "subject removed"
        assert "t.Event" in problem.detail and '"aliases": ["t.Evt"]' in problem.detail  # names both
    deleted = _write(tmp_path / "deleted", {"Keep.avsc": rec(name="Keep")})
    assert check_schemas(deleted, against=str(tmp_path / "old"), mode=mode).ok is (mode is CompatMode.NONE)


def test_an_alias_carries_the_old_subjects_history(tmp_path: Path) -> None:
    _write(tmp_path / "old", {"Evt.avsc": EVT_V1})
    aliased = {**rec(f("a", "int"), f("b", "int", default=0), name="Event"), "aliases": ["t.Evt"]}
    target = _write(tmp_path / "ok", {"Evt.avsc": aliased})
    report = check_schemas(target, against=str(tmp_path / "old"), mode=CompatMode.BACKWARD)
    assert report.ok
    assert [(s.subject, s.renamed_from, s.history) for s in report.subjects] == [("t.Event", "t.Evt", 1)]
    # Avro's rule, not ours: the old reader knows no alias for the new name, so FORWARD breaks.
    report = check_schemas(target, against=str(tmp_path / "old"), mode=CompatMode.FULL)
    assert [(i.path, i.direction.name) for s in report.subjects for i in s.incompatibilities] == [("Event", "FORWARD")]
    # A breaking change under a new name is still checked against the old name's versions.
    broken = {**rec(f("a", "string"), name="Event"), "aliases": ["Evt"]}  # short alias: same namespace
    report = check_schemas(_write(tmp_path / "bad", {"Evt.avsc": broken}), against=str(tmp_path / "old"), mode=CompatMode.BACKWARD)
    assert [(i.path, i.rule) for s in report.subjects for i in s.incompatibilities] == [("Event.a", "type changed int→string")]


def test_rename_is_caught_from_a_git_ref_and_a_registry(tmp_path: Path) -> None:
    repo = _write(tmp_path / "repo", {"schemas/Evt.avsc": EVT_V1})
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "v1")
    _write(repo / "schemas", {"Evt.avsc": rec(f("a", "int"), name="Event")})
    by_git = check_schemas(repo / "schemas" / "Evt.avsc", against="git:HEAD")
    registry = ConfluentRegistry("mock://compat-rename")
    registry.register("Evt", EVT_V1)  # topic-name strategy: the subject is the file stem
    by_registry = check_schemas(repo / "schemas" / "Evt.avsc", against=PreviousVersions(label="registry", registry=registry))
    for report in (by_git, by_registry):
        assert not report.ok
        assert [s.subject for s in report.subjects if s.removed] in (["t.Evt"], ["Evt"])


def test_version_history_in_a_directory(tmp_path: Path) -> None:
    v1, v2 = rec(f("a", "int"), name="Evt"), rec(f("a", "int"), f("b", "int", default=0), name="Evt")
    v3 = rec(f("a", "int"), f("b", "int"), name="Evt")  # drops b's default: v1 data cannot be read
    shared = {"type": "enum", "name": "Shared", "namespace": "t", "symbols": ["X"]}
    # v<N>/ folders and <stem>.v<N>.avsc files mix; a version holds only what changed, the rest carries over.
    history = _write(tmp_path / "h", {"v1/Evt.avsc": v1, "v1/Shared.avsc": shared, "Evt.v2.avsc": v2})
    new = _write(tmp_path / "new", {"Evt.avsc": v3}) / "Evt.avsc"
    latest = check_schemas(new, against=str(history), mode=CompatMode.BACKWARD)
    assert latest.ok and latest.subjects[0].checked_against == (f"t.Evt v2 at dir:{history}",)
    every = check_schemas(new, against=str(history), mode=CompatMode.BACKWARD_TRANSITIVE)
    assert [(i.path, i.against) for s in every.subjects for i in s.incompatibilities] == [("Evt.b", f"t.Evt v1 at dir:{history}")]
    # Shared is in v1 only, yet carried into v2: not "removed" when the target keeps it.
    assert {s.subject for s in check_schemas(_write(tmp_path / "both", {"Evt.avsc": v2, "Shared.avsc": shared}), against=str(history)).subjects} == {"t.Evt", "t.Shared"}
    # The directory's own history is used when --against is not given.
    own = _write(tmp_path / "own", {"Evt.v1.avsc": v1, "Evt.v2.avsc": v2, "Evt.v3.avsc": v3})
    assert check_schemas(own, mode=CompatMode.BACKWARD).ok
    assert not check_schemas(own, mode=CompatMode.BACKWARD_TRANSITIVE).ok
    _write(own, {"v2/Evt.avsc": v2})
    with pytest.raises(SchemaError, match=r"both version 2 of Evt\.avsc"):
        check_schemas(own)


def test_reasons_are_path_level_in_text_json_and_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = lambda t: rec(f("amount", t), name="Payload")  # noqa: E731
    _write(tmp_path / "old", {"Evt.avsc": rec(f("payload", payload("int")), name="Evt")})
    new = _write(tmp_path / "new", {"Evt.avsc": rec(f("payload", payload("string")), name="Evt")}) / "Evt.avsc"
    junit = tmp_path / "r.xml"
    code, out, _ = _cli(capsys, str(new), "--against", str(tmp_path / "old"), "--mode", "BACKWARD", "--junit", str(junit))
    assert code == 1 and "Evt.payload.amount: type changed int→string" in out
    code, out, _ = _cli(capsys, str(new), "--against", str(tmp_path / "old"), "--mode", "BACKWARD", "--json")
    problem = json.loads(out)["subjects"][0]["incompatibilities"][0]
    assert (problem["path"], problem["rule"]) == ("Evt.payload.amount", "type changed int→string")
    assert "Evt.payload.amount: type changed int→string" in (ET.parse(junit).getroot().find("testcase/failure").text or "")  # type: ignore[union-attr]


def test_subjects_of_a_set() -> None:
    texts = {
        "Evt.avsc": json.dumps(rec(f("i", rec(name="Inner")), f("e", "t.Shared"), name="Evt")),
        "Shared.avsc": json.dumps({"type": "enum", "name": "Shared", "namespace": "t", "symbols": ["A"]}),
        "Alone.avsc": json.dumps({"type": "fixed", "name": "Alone", "namespace": "t", "size": 1}),
        "orders-value.avsc": json.dumps(["null", "t.Evt"]),
        "ids.avsc": json.dumps({"type": "array", "items": "long"}),
    }
    schemas = SchemaSet.from_texts(texts, source="x")
    # Inner (defined inside Evt) and Shared/Evt (referred to) are parts of other subjects.
    assert schemas.subjects() == ("t.Alone", "ids", "orders-value")
    assert schemas.compose("orders-value")[1]["name"] == "t.Evt"


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({"x.avsc": {"type": "record", "fields": []}}, [], "x.avsc: record has no name"),
        ({"x.avsc": {"type": "enum", "name": "", "symbols": []}}, [], "x.avsc: enum has no name"),
        ({"x.avsc": {"type": "record", "name": "R", "fields": 3}}, [], "fields must be a list"),
        ({"x.avsc": {"type": "wat"}}, [], "x.avsc: x refers to unknown type wat"),
        ({"x.avsc": json.loads("[" * 900 + "]" * 900)}, [], "nested too deeply"),
        ({}, ["--against", "registry:file:///tmp/nope"], "registry:file:///tmp/nope: a registry URL starts with"),
        ({}, ["--junit", "/proc/nope/r.xml", "--allow-empty"], "--junit /proc/nope/r.xml"),
        ({}, ["--against", "git:no-such-ref-xyz"], "not a git repository"),
        ({}, ["--subject", "nope"], "--subject nope: not a subject"),
    ],
)
def test_bad_input_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, object], args: list[str], message: str
) -> None:
    directory = _write(tmp_path / "s", files or {"ok.avsc": "int"})
    code, _, err = _cli(capsys, str(directory / next(iter(files or {"ok.avsc": 0}))), *args)
    assert code in (1, 2)
    assert err.count("\n") == 1 and err.startswith("rspp: error: ") and message in err, err
    assert "Traceback" not in err


def test_non_utf8_schema_fails_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.avsc"
    bad.write_bytes(b'"\xff\xfe"')
    for target in (bad, tmp_path):
        code, _, err = _cli(capsys, str(target), "--against", str(tmp_path))
        assert code in (1, 2) and err == f"rspp: error: {bad}: not UTF-8 text (byte 1)\n"


def test_abi_register_records_a_first_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first version has nothing to be checked against; registering it must not be refused.
    fresh = _copy_avro(tmp_path)
    (fresh / "registry.json").unlink()
    monkeypatch.setenv("RSPP_AVRO_DIR", str(fresh))
    with pytest.raises(SystemExit) as exit_info:
        main(["abi", "register"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    assert "rspp.events.Envelope v1" in capsys.readouterr().out
    assert json.loads((fresh / "registry.json").read_text())["subjects"]["rspp.events.Envelope"]
