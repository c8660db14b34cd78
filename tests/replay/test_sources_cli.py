"""Log sources, bad input (exit 2), the CLI (exit codes, JSON, JUnit) and re-simulation."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from pipelines.canonical import canonical_json, digest_of
from replay import (
    BundleNotFoundError,
    ContainerLogSource,
    CorruptInputError,
    DivergenceKind,
    ForeignLogError,
    replay,
)
from replay.testing import write_log
from streams.abi.events import EventType, TurnOpen
from streams.cli import main
from streams.nodes import TranscriptText, default_registry
from streams.nodes.text import NormalizeNode
from tests.replay import gen_fixtures as gen


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_cli_exit_codes_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["replay", str(gen.log_file("clean")), "--allow-unverified"], capsys)
    assert code == 0 and "clean" in out and "events/s" in out
    code, out, err = _run(["replay", str(gen.log_file("stale_epoch")), "--json",
                           "--allow-unverified"], capsys)
    assert code == 1
    report = orjson.loads(out)
    assert report["summary"]["divergences"] == 1 and "events/s" in err
    (d,) = [d for t in report["turns"] for d in t["divergences"]]
    assert d["kind"] == "epoch_fencing" and d["expected"].startswith("epoch 2")
    assert d["actual"] == "epoch 1"


def test_cli_junit_has_one_testcase_per_turn(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "replay.xml"
    code, _, _ = _run(["replay", str(gen.log_file("post_cancel_output")), "--junit", str(junit),
                       "--allow-unverified"], capsys)
    assert code == 1
    suite = ET.parse(junit).getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert sorted(cases) == ["integrity", "t1", "t2", "t3", "t4"]
    assert cases["integrity"].find("failure") is None
    assert suite.get("failures") == "1"
    failure = cases["t2"].find("failure")
    assert failure is not None and failure.get("type") == "cancel_fencing"
    assert all(cases[t].find("failure") is None for t in ("t1", "t3", "t4"))


def _corrupt(tmp_path: Path) -> Path:
    data = bytearray(gen.log_file("clean").read_bytes())
    for i in range(len(data) - 400, len(data) - 40):  # inside the compressed block
        data[i] ^= 0x5A
    bad = tmp_path / "corrupt.avro"
    bad.write_bytes(bytes(data))
    return bad


def test_corrupt_container_is_exit_2_naming_the_file(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = _corrupt(tmp_path)
    with pytest.raises(CorruptInputError, match=r"corrupt\.avro"):
        replay(ContainerLogSource(bad, allow_unverified=True))
    code, _, err = _run(["replay", str(bad), "--allow-unverified"], capsys)
    assert code == 2 and err.startswith("rspp: error: ") and "corrupt.avro" in err
    assert err.count("\n") == 1
    not_avro = tmp_path / "x.avro"
    not_avro.write_bytes(b"hello")
    code, _, err = _run(["replay", str(not_avro), "--allow-unverified"], capsys)
    assert code == 2 and "x.avro: not an Avro container file" in err


def test_another_prefix_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ForeignLogError, match=r"rspp\.prefix is 'golden', expected 'prod'"):
        list(ContainerLogSource(gen.log_file("clean"), prefix="prod", allow_unverified=True))
    code, _, err = _run(["replay", str(gen.log_file("clean")), "--prefix", "prod",
                         "--allow-unverified"], capsys)
    assert code == 2 and "clean.avro" in err


def test_tenant_filter_keeps_lease_records() -> None:
    kept = list(ContainerLogSource(gen.log_file("clean"), tenant="nobody", allow_unverified=True))
    assert {env.event_type for _, env in kept} == {EventType.LEASE_GRANTED}


def test_session_filter_replays_only_that_session() -> None:
    result = replay(ContainerLogSource(gen.log_file("clean"), session="s3", allow_unverified=True))
    assert result.ok and [t.turn_id for t in result.turns] == ["t3", "t4"]


def test_unknown_bundle_is_exit_2(tmp_path: Path) -> None:
    log = gen.clean_log()
    i = next(i for i, e in enumerate(log) if e.event_type is EventType.TURN_OPEN)
    doc = orjson.loads(log[i].payload.plan_json)  # type: ignore[attr-defined]
    doc["bundle_digest"] = "sha256:" + "0" * 64
    doc.pop("plan_hash")
    doc["plan_hash"] = digest_of(doc)
    log[i] = dataclasses.replace(log[i], payload=TurnOpen(
        plan_hash=doc["plan_hash"], plan_json=canonical_json(doc).decode()))
    path = tmp_path / "orphan.avro"
    write_log(log, path, prefix=gen.PREFIX)
    with pytest.raises(BundleNotFoundError, match=r"sha256:0000.*turn t1 at orphan\.avro#3") as info:
        replay(ContainerLogSource(path, allow_unverified=True))
    assert info.value.exit_code == 2


class _ShoutingNormalize(NormalizeNode):
    """A 'new release' of text.normalize that stopped lowercasing."""

    async def process(self, item, ctx):  # type: ignore[no-untyped-def]
        async for out in super().process(item, ctx):
            assert isinstance(out, TranscriptText)
            yield TranscriptText(out.text.upper(), out.final, out.confidence)


def test_changed_node_behaviour_fails_resimulation_naming_that_node() -> None:
    from streams.nodes.kind import parse_config
    from streams.nodes.text import NormalizeConfig

    registry = default_registry()
    registry.register(
        "text.normalize",
        lambda node_id, mapping, policy: (lambda: _ShoutingNormalize(
            parse_config(NormalizeConfig, mapping, node_id=node_id))),
        deterministic=True, replace=True)
    result = replay(ContainerLogSource(gen.log_file("clean"), allow_unverified=True), resimulate=True, registry=registry)
    nodes = {(d.kind, d.node_id) for d in result.divergences}
    assert nodes == {(DivergenceKind.OUTPUT, "normalize.clean")}
    first = result.divergences[0]
    assert first.turn_id == "t1" and first.expected == "um turn on the kitchen lights"
    assert first.actual == "UM TURN ON THE KITCHEN LIGHTS"


def _candidate(tmp_path: Path) -> Path:
    from pipelines.bundles import bundle_digest

    doc = orjson.loads(gen.BUNDLE.read_bytes())
    respond = next(n for n in doc["resolved_spec"]["nodes"] if n["id"] == "respond")
    respond["config"]["value"]["rules"][0]["reply"] = "Kitchen lights on."
    doc["metadata"]["version"] = "1.0.1"
    doc["digest"] = bundle_digest(doc)
    path = tmp_path / "candidate.json"
    path.write_bytes(orjson.dumps(doc))
    return path


def test_candidate_bundle_shows_what_would_change(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    result = replay(ContainerLogSource(gen.log_file("clean"), allow_unverified=True), bundle=_candidate(tmp_path))
    assert result.mode == "candidate" and result.bundle is not None
    seen = [(d.kind, d.turn_id, d.node_id) for d in result.divergences]
    # Every turn's plan changes at respond; only t1 asked for the lights.
    assert seen.count((DivergenceKind.PLAN_CHANGE, "t1", "respond")) == 1
    assert (DivergenceKind.OUTPUT, "t1", "respond") in seen
    drift = next(d for d in result.divergences if d.kind is DivergenceKind.OUTPUT)
    assert drift.diff == "[-Turning on the kitchen lights.-] {+Kitchen lights on.+}"
    code, _, _ = _run(["replay", str(gen.log_file("clean")), "--allow-unverified", "--bundle",
                       str(_candidate(tmp_path))], capsys)
    assert code == 1


def test_replay_many_streams_results_per_session() -> None:
    from replay import replay_many

    stream: Iterator[object] = replay_many(ContainerLogSource(gen.log_file("clean"), allow_unverified=True))
    first = next(stream)
    assert getattr(first, "turn_id", None) == "t1"
    assert len(list(stream)) == 3


def test_export_from_a_file_source_round_trips_and_guards_its_digests(tmp_path: Path) -> None:
    from replay import export_log

    out = tmp_path / "export"
    manifest = export_log(ContainerLogSource(gen.log_file("clean"), allow_unverified=True), out, prefix=gen.PREFIX)
    assert manifest["export"]["events"] == 62
    assert [s["session_id"] for s in manifest["sessions"]] == ["__partition-0", "s1", "s2", "s3"]
    assert manifest["sessions"][2]["turns"] == []  # rejected: no turns
    t1 = manifest["sessions"][1]["turns"][0]
    assert t1["turn_ref"] == "acme/s1/t1" and t1["outcome"] == "COMMITTED"
    assert t1["bundle_digest"] == manifest["bundles"][0]["digest"]
    original = [env for _, env in ContainerLogSource(gen.log_file("clean"), allow_unverified=True)]
    assert [env for _, env in ContainerLogSource(out)] == original
    assert replay(ContainerLogSource(out)).ok
    data = out / manifest["files"][0]["path"]
    data.write_bytes(data.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CorruptInputError, match=r"^digest mismatch: golden\.log\.p0\.avro: .* does "
                       r"not match the manifest's .*cannot decode"):
        list(ContainerLogSource(out))
