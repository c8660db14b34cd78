"""An export is complete and verifiable: manifest completeness, signatures, bundle pinning.

Small two-partition exports written from golden recordings (partition 1 belongs
to another tenant that reuses session id ``s1``). Each tampering below used to
replay clean; each must now fail with its one-line reason, in the report, the
JSON and the JUnit file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import stat
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipelines.bundles import bundle_digest, read_bundle
from replay import (
    ContainerLogSource,
    DivergenceKind,
    ReplayError,
    ReplayResult,
    export_log,
    replay,
)
from replay.testing import LogRecorder, write_log
from streams.abi.events import Admit, Envelope
from streams.cli import main
from tests.replay import gen_fixtures as gen

P0, P1 = f"{gen.PREFIX}.log.p0.avro", f"{gen.PREFIX}.log.p1.avro"


def _globex_log(prefix: str = gen.PREFIX) -> list[Envelope]:
    rec = LogRecorder(prefix=prefix, tenant="globex", bundle=read_bundle(gen.BUNDLE), partition=1)
    rec.grant(1, "proc-b")
    rec.open_session("s1")  # same session id as acme's s1: identity is (tenant, session)
    turn = rec.open_turn("s1", "t1", trigger="final_transcript")
    heard = rec.text_input("s1", turn, "what time is it")
    out = rec.outputs("s1", turn, heard)
    rec.accept("s1", turn, out["tts"][0])
    rec.commit("s1", turn, outputs=1)
    rec.close_session("s1")
    return rec.events


def _export(tmp_path: Path, *, p0: list[Envelope] | None = None, prefix: str = gen.PREFIX,
            name: str = "export", sign_key: Path | None = None) -> tuple[Path, dict[str, Any]]:
    src = tmp_path / f"{name}-src"
    src.mkdir()
    write_log(gen.clean_log() if p0 is None else p0, src / f"{prefix}.log.p0.avro", prefix=prefix)
    write_log(_globex_log(prefix), src / f"{prefix}.log.p1.avro", prefix=prefix, partition=1)
    out = tmp_path / name
    manifest = export_log(ContainerLogSource(src, allow_unverified=True), out, prefix=prefix,
                          bundle_dirs=[gen.BUNDLE.parent], sign_key=sign_key)
    return out, manifest


def _save(out: Path, manifest: dict[str, Any]) -> None:
    (out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


def _redigest(out: Path, manifest: dict[str, Any]) -> None:
    """What someone editing an unsigned export does: make the file digests match again."""
    for f in manifest["files"]:
        f["sha256"] = "sha256:" + hashlib.sha256((out / f["path"]).read_bytes()).hexdigest()
    _save(out, manifest)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    # The human report wraps at the terminal's width: compare words, not line breaks.
    return int(info.value.code or 0), " ".join(out.out.split()), out.err


def _problems(out: Path, **kw: Any) -> tuple[str, ...]:
    result = replay(ContainerLogSource(out, **kw))
    assert not result.ok and result.exit_code == 1
    return result.integrity


def test_a_complete_export_is_verified_and_records_what_replay_checks(tmp_path: Path) -> None:
    out, manifest = _export(tmp_path)
    assert manifest["export"]["prefix"] == gen.PREFIX
    assert "cluster_id" in manifest["export"]  # None: this export was written from files
    assert [(p["partition"], p["records"], p["offsets"]) for p in manifest["partitions"]] == [
        (0, 62, [[0, 61]]), (1, 15, [[0, 14]])]
    keyed = {(s["tenant_id"], s["session_id"]): [t["turn_id"] for t in s["turns"]]
             for s in manifest["sessions"]}
    assert keyed[("acme", "s1")] == ["t1", "t2"] and keyed[("globex", "s1")] == ["t1"]
    result = replay(ContainerLogSource(out))
    assert result.ok and result.integrity == () and result.notes == ()
    assert len([t for t in result.turns if t.turn_id]) == 5


def test_missing_partition_file_fails_with_the_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, manifest = _export(tmp_path)
    (out / P1).unlink()
    problems = _problems(out)
    assert problems[0] == (f"missing partition file: {P1} (partition 1, 15 records) is listed in "
                           "the manifest but not present")
    assert "missing turn: globex/s1/t1 is in the manifest but not in the export" in problems
    # Dropping the file from the manifest's file list too still leaves the partition record.
    manifest["files"] = [f for f in manifest["files"] if f["partition"] == 0]
    _save(out, manifest)
    assert ("missing partition file: partition 1 has 15 records but no file in the manifest's "
            "file list") in _problems(out)
    junit = tmp_path / "replay.xml"
    code, stdout, _ = _run(["replay", str(out), "--json", "--junit", str(junit)], capsys)
    report = orjson.loads(stdout)
    assert code == 1 and report["summary"]["ok"] is False
    assert any(p.startswith("missing partition file: partition 1") for p in report["integrity"])
    case = next(c for c in ET.parse(junit).getroot().iter("testcase")
                if c.get("name") == "integrity")
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "export_integrity"
    assert "missing partition file" in (failure.text or "")


def test_offset_gap_fails_even_when_the_digest_was_recomputed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, manifest = _export(tmp_path)
    events = [env for _, env in ContainerLogSource(out / P0, allow_unverified=True)]
    write_log(events[:20] + events[21:], out / P0, prefix=gen.PREFIX)  # one record lost
    _redigest(out, manifest)
    problems = _problems(out)
    assert (f"offset gap: partition 0: {P0} holds 61 records, the manifest's offsets account "
            "for 62") in problems
    lost = events[20]
    assert any(p.startswith(f"missing records: turn acme/s1/{lost.turn_id} has ")
               for p in problems)
    code, stdout, _ = _run(["replay", str(out)], capsys)
    assert code == 1 and "offset gap: partition 0" in stdout
    # A manifest whose offset runs do not add up to its own record count is a gap too.
    manifest["partitions"][1]["offsets"] = [[0, 9]]
    _save(out, manifest)
    assert ("offset gap: partition 1: the manifest's offsets account for 10 records, its count "
            "says 15") in _problems(out)


def test_duplicated_turn_fails_even_in_a_freshly_recomputed_manifest(tmp_path: Path) -> None:
    log = gen.clean_log()
    t4 = [env for env in log if env.turn_id == "t4"]
    # The turn's records land in the log twice (e.g. an at-least-once copy job).
    out, _ = _export(tmp_path, p0=[*log, *t4])
    problems = _problems(out)
    first_copy, opened = len(log), log.index(t4[0])
    assert (f"duplicated record: event {t4[0].event_id} (TURN_OPEN) at {P0}#{first_copy} was "
            f"already read at {P0}#{opened}") in problems
    assert (f"duplicated turn: acme/s3/t4 opened again at {P0}#{first_copy} (first at "
            f"{P0}#{opened})") in problems
    # The turn run twice under fresh event ids: no record repeats, the turn still does.
    again = [dataclasses.replace(e, event_id=str(uuid.uuid4())) for e in t4]
    out, _ = _export(tmp_path, p0=[*log, *again], name="rerun")
    problems = _problems(out)
    assert not any(p.startswith("duplicated record") for p in problems)
    assert (f"duplicated turn: acme/s3/t4 opened again at {P0}#{first_copy} (first at "
            f"{P0}#{opened})") in problems


def test_foreign_partition_file_fails(tmp_path: Path) -> None:
    out, manifest = _export(tmp_path)
    other, _ = _export(tmp_path, prefix="other", name="other")
    shutil.copy(other / "other.log.p1.avro", out / P1)  # same partition, another deployment
    _redigest(out, manifest)
    assert _problems(out) == (f"foreign partition file: {P1}: rspp.prefix is 'other', the "
                              f"manifest's prefix is '{gen.PREFIX}'",)
    shutil.copy(other / "other.log.p1.avro", out / "stray.avro")
    assert "foreign partition file: stray.avro is not accounted for by the manifest" in \
        _problems(out)
    (out / "stray.avro").unlink()
    shutil.copy(other / "other.log.p1.avro", out / P1)
    # A cluster the files were not read from.
    out2, manifest2 = _export(tmp_path, name="cluster")
    manifest2["export"]["cluster_id"] = "4L6g3nShT-eMCtK--X86sw"
    _save(out2, manifest2)
    assert (f"foreign partition file: {P0}: rspp.cluster is None, the manifest's cluster is "
            "'4L6g3nShT-eMCtK--X86sw'") in _problems(out2)


def test_digest_mismatch_of_a_readable_file_is_reported(tmp_path: Path) -> None:
    out, manifest = _export(tmp_path)
    events = [env for _, env in ContainerLogSource(out / P0, allow_unverified=True)]
    events[5] = dataclasses.replace(events[5], ts=events[5].ts.replace(microsecond=1))
    write_log(events, out / P0, prefix=gen.PREFIX)
    (problem,) = _problems(out)
    assert problem.startswith(f"digest mismatch: {P0}: sha256 sha256:")
    assert problem.endswith(f"does not match the manifest's {manifest['files'][0]['sha256']}")


def test_no_manifest_is_unverified_unless_allowed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = _export(tmp_path)
    (out / "manifest.json").unlink()
    (problem,) = _problems(out)
    assert problem.startswith("unverified: no manifest (")
    assert "pass --allow-unverified to replay it anyway" in problem
    code, stdout, _ = _run(["replay", str(out)], capsys)
    assert code == 1 and "unverified: no manifest" in stdout
    code, stdout, _ = _run(["replay", str(out), "--allow-unverified"], capsys)
    assert code == 0 and "unverified: no manifest" in stdout  # still said, as a note
    allowed = replay(ContainerLogSource(out, allow_unverified=True))
    assert allowed.ok and allowed.notes[0].startswith("unverified: no manifest")


def test_signed_manifest_verifies_and_tampering_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    code, _, _ = _run(["keys", "generate", "--out", str(keys)], capsys)
    private, public = keys / "rspp-export.key", keys / "rspp-export.pub"
    assert code == 0 and stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"BEGIN PUBLIC KEY" in public.read_bytes()
    code, _, err = _run(["keys", "generate", "--out", str(keys)], capsys)
    assert code == 2 and "already exists" in err and err.count("\n") == 1

    # A key that cannot sign is refused before anything is read or written.
    never = tmp_path / "never"
    with pytest.raises(ReplayError, match=r"rspp-export\.pub: not an unencrypted PEM private key"):
        export_log(ContainerLogSource(gen.log_file("clean"), allow_unverified=True), never,
                   prefix=gen.PREFIX, sign_key=public)
    assert not never.exists()

    out, manifest = _export(tmp_path, sign_key=private)
    assert manifest["signature"]["algorithm"] == "ed25519"
    assert replay(ContainerLogSource(out, verify_key=public)).ok
    code, _, _ = _run(["replay", str(out), "--verify-key", str(public)], capsys)
    assert code == 0

    # A manifest recomputed after a partition file was swapped: the signature no longer holds.
    manifest["sessions"] = [s for s in manifest["sessions"] if s["tenant_id"] != "globex"]
    _save(out, manifest)
    problems = _problems(out, verify_key=public)
    assert problems[0] == ("signature: the manifest does not verify with rspp-export.pub "
                           "(changed after signing, or signed with another key)")
    code, stdout, _ = _run(["replay", str(out), "--verify-key", str(public), "--json"], capsys)
    assert code == 1 and orjson.loads(stdout)["integrity"][0].startswith("signature: ")

    # Signed by another key.
    other = tmp_path / "other-keys"
    _run(["keys", "generate", "--out", str(other)], capsys)
    resigned, _ = _export(tmp_path, name="resigned", sign_key=other / "rspp-export.key")
    assert _problems(resigned, verify_key=public)[0].startswith("signature: the manifest does "
                                                                "not verify")
    # Unsigned, but a key was asked for.
    unsigned, _ = _export(tmp_path, name="unsigned")
    assert _problems(unsigned, verify_key=public) == (
        "signature: the manifest is not signed, but --verify-key rspp-export.pub was given",)
    # A key file that is not a public key is bad input: exit 2, one line.
    code, _, err = _run(["replay", str(unsigned), "--verify-key", str(private)], capsys)
    assert code == 2 and err.startswith("rspp: error: ") and err.count("\n") == 1


def _rehashed_bundle(tmp_path: Path, *, version: str | None) -> Path:
    doc = orjson.loads(gen.BUNDLE.read_bytes())
    respond = next(n for n in doc["resolved_spec"]["nodes"] if n["id"] == "respond")
    respond["config"]["value"]["rules"][0]["reply"] = "Kitchen lights on."
    if version is not None:
        doc["metadata"]["version"] = version
    doc["digest"] = bundle_digest(doc)
    path = tmp_path / f"bundle-{version or 'rehashed'}.json"
    path.write_bytes(orjson.dumps(doc))
    return path


def _switching_log(switch_to: Path) -> list[Envelope]:
    """acme/s1 admitted on voice_assistant@1.0.0; its second turn runs on ``switch_to``."""
    rec = LogRecorder(prefix=gen.PREFIX, tenant="acme", bundle=read_bundle(gen.BUNDLE))
    rec.grant(1, "proc-a")
    rec.open_session("s1")
    for turn_id in ("t1", "t2"):
        if turn_id == "t2":
            rec.bundle = read_bundle(switch_to)  # a redeploy that did not keep the pin
        turn = rec.open_turn("s1", turn_id, trigger="final_transcript")
        heard = rec.text_input("s1", turn, "what time is it")
        out = rec.outputs("s1", turn, heard)
        rec.accept("s1", turn, out["tts"][0])
        rec.commit("s1", turn, outputs=1)
    rec.close_session("s1")
    return rec.events


@pytest.mark.parametrize("version", ["1.0.1", None])
def test_mid_life_bundle_switch_is_a_divergence_naming_session_and_turn(
        tmp_path: Path, version: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    other = _rehashed_bundle(tmp_path, version=version)
    log = tmp_path / "switch.avro"
    write_log(_switching_log(other), log, prefix=gen.PREFIX)
    result = replay(ContainerLogSource(log, allow_unverified=True), bundle_dirs=[tmp_path])
    assert [(d.kind, d.session_id, d.turn_id) for d in result.divergences] == [
        (DivergenceKind.BUNDLE_PINNING, "s1", "t2")]
    (d,) = result.divergences
    new = read_bundle(other)
    assert d.actual == f"{new.ref} ({new.digest})"
    if version is not None:  # another version than ADMIT recorded
        assert d.expected == "voice_assistant@1.0.0"
        assert d.message.startswith("turn t2 ran on voice_assistant@1.0.1, but the session was "
                                    "admitted on voice_assistant@1.0.0 (ADMIT at switch.avro#")
    else:  # the same name@version re-hashed: only the digest tells
        assert d.message.startswith("turn t2 ran on voice_assistant@1.0.0 (sha256:")
        assert "but turn t1 of the session ran on voice_assistant@1.0.0 (sha256:" in d.message
    assert d.one_line().startswith("bundle_pinning: session s1 turn t2 at switch.avro#")
    code, stdout, _ = _run(["replay", str(log), "--allow-unverified", "--bundles", str(tmp_path),
                            "--json"], capsys)
    kinds = [x["kind"] for t in orjson.loads(stdout)["turns"] for x in t["divergences"]]
    assert code == 1 and kinds == ["bundle_pinning"]


def test_pinned_sessions_of_two_tenants_with_one_session_id_are_judged_apart(
        tmp_path: Path) -> None:
    # acme/s1 and globex/s1 run on different bundles for life: no switch in either.
    other = read_bundle(_rehashed_bundle(tmp_path, version="1.0.1"))
    rec = LogRecorder(prefix=gen.PREFIX, tenant="acme", bundle=read_bundle(gen.BUNDLE))
    rec.grant(1, "proc-a")
    for tenant, bundle in (("acme", read_bundle(gen.BUNDLE)), ("globex", other)):
        rec.tenant, rec.bundle = tenant, bundle
        rec.open_session("s1")
        turn = rec.open_turn("s1", f"{tenant}-t1", trigger="final_transcript")
        heard = rec.text_input("s1", turn, "hello")
        rec.outputs("s1", turn, heard)
        rec.commit("s1", turn, outputs=0)
    log = tmp_path / "two.avro"
    write_log(rec.events, log, prefix=gen.PREFIX)
    result: ReplayResult = replay(ContainerLogSource(log, allow_unverified=True),
                                  bundle_dirs=[tmp_path])
    assert result.divergences == ()
    assert {t.tenant_id for t in result.turns if t.turn_id} == {"acme", "globex"}


def test_readmission_on_another_bundle_and_a_stray_bundle_id_are_pinning_divergences(
        tmp_path: Path) -> None:
    other = read_bundle(_rehashed_bundle(tmp_path, version="1.0.1"))
    rec = LogRecorder(prefix=gen.PREFIX, tenant="acme", bundle=read_bundle(gen.BUNDLE))
    rec.grant(1, "proc-a")
    rec.open_session("s1")
    turn = rec.open_turn("s1", "t1", trigger="final_transcript")
    heard = rec.text_input("s1", turn, "hello")
    rec.outputs("s1", turn, heard)
    rec.commit("s1", turn, outputs=0)
    readmit = rec.append(Admit(reason="pinned"), session_id="s1", bundle_id=other.ref)
    rec.close_session("s1")
    events = list(rec.events)
    commit = next(i for i, e in enumerate(events) if e.event_type.value == "TURN_COMMIT")
    events[commit] = dataclasses.replace(events[commit], bundle_id=other.ref)
    log = tmp_path / "readmit.avro"
    write_log(events, log, prefix=gen.PREFIX)
    result = replay(ContainerLogSource(log, allow_unverified=True), bundle_dirs=[tmp_path])
    found = [(d.kind, d.turn_id, d.position.offset if d.position else None, d.message)
             for d in result.divergences]
    assert found == [
        (DivergenceKind.BUNDLE_PINNING, "t1", commit,
         "TURN_COMMIT of turn t1 carries bundle voice_assistant@1.0.1, its plan is on "
         "voice_assistant@1.0.0"),
        (DivergenceKind.BUNDLE_PINNING, None, events.index(readmit),
         "ADMIT again on voice_assistant@1.0.1; the session was admitted on "
         "voice_assistant@1.0.0 at readmit.avro#2"),
    ]


def test_any_lost_or_repeated_record_is_caught_in_a_redigested_export(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    base, manifest = _export(tmp_path_factory.mktemp("base"))
    records = {p: [env for _, env in ContainerLogSource(base / name, allow_unverified=True)]
               for p, name in ((0, P0), (1, P1))}

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(partition=st.sampled_from([0, 1]), index=st.integers(min_value=0, max_value=61),
           repeat=st.booleans())
    def check(partition: int, index: int, repeat: bool) -> None:
        out = tmp_path_factory.mktemp("case") / "export"
        shutil.copytree(base, out)
        events = list(records[partition])
        index %= len(events)
        edited = (events[:index + 1] + events[index:]) if repeat else \
            (events[:index] + events[index + 1:])
        write_log(edited, out / (P0, P1)[partition], prefix=gen.PREFIX, partition=partition)
        _redigest(out, orjson.loads((base / "manifest.json").read_bytes()))
        problems = _problems(out)
        name, n = (P0, P1)[partition], len(events)
        if repeat:
            assert (f"duplicated records: partition {partition}: {name} holds {n + 1} records, "
                    f"the manifest's offsets account for {n}") in problems
            assert any(p.startswith(f"duplicated record: event {events[index].event_id} ")
                       for p in problems)
        else:
            assert (f"offset gap: partition {partition}: {name} holds {n - 1} records, the "
                    f"manifest's offsets account for {n}") in problems

    check()
    assert manifest["partitions"][0]["records"] == len(records[0])
