"""Golden fixtures: the clean log replays clean, each mutated log yields exactly its report."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from replay import ContainerLogSource, DivergenceError, DivergenceKind, replay
from replay.testing import write_log
from tests.replay import gen_fixtures as gen

EXPECTED_KIND = {
    "plan_hash_drift": (DivergenceKind.PLAN_HASH, "t1", None),
    "lifecycle_out_of_order": (DivergenceKind.LIFECYCLE, "t1", None),
    "missing_l0_field": (DivergenceKind.EVIDENCE, "t2", None),
    "stale_epoch": (DivergenceKind.EPOCH, "t3", None),
    "post_cancel_output": (DivergenceKind.CANCEL, "t2", "tts"),
    "output_drift": (DivergenceKind.OUTPUT, "t1", "respond"),
    "broken_correlation": (DivergenceKind.CORRELATION, "t4", "tts"),
}


@pytest.mark.parametrize("name", sorted(gen.CASES))
def test_fixture_matches_its_golden_report(name: str) -> None:
    expected = orjson.loads((gen.FIXTURES / f"{name}.expected.json").read_bytes())
    assert gen.expected_report(name) == expected


@pytest.mark.parametrize("name", sorted(EXPECTED_KIND))
def test_each_mutation_is_one_divergence_of_its_class(name: str) -> None:
    kind, turn, node = EXPECTED_KIND[name]
    result = replay(ContainerLogSource(gen.log_file(name), allow_unverified=True), resimulate=gen.CASES[name][1])
    assert [(d.kind, d.turn_id, d.node_id) for d in result.divergences] == [(kind, turn, node)]
    assert result.exit_code == 1
    with pytest.raises(DivergenceError) as info:
        result.raise_on_divergence()
    assert info.value.exit_code == 1 and kind.value in str(info.value)


def test_clean_log_is_clean_in_every_mode() -> None:
    for resimulate in (False, True):
        result = replay(ContainerLogSource(gen.log_file("clean"), allow_unverified=True), resimulate=resimulate)
        assert result.ok and result.exit_code == 0
        assert [t.turn_id for t in result.turns] == ["t1", "t2", "t3", "t4"]
        assert [t.outcome for t in result.turns] == ["COMMITTED", "ABORTED", "ABORTED", "COMMITTED"]
    result.raise_on_divergence()  # no error when clean


def test_output_drift_shows_a_readable_text_diff() -> None:
    (d,) = replay(ContainerLogSource(gen.log_file("output_drift"), allow_unverified=True), resimulate=True).divergences
    assert d.expected == "Turning off the kitchen lights."
    assert d.actual == "Turning on the kitchen lights."
    assert d.diff == "Turning [-off-] {+on+} the kitchen lights."
    assert str(d.position) == "output_drift.avro#8"


def test_output_drift_is_invisible_without_resimulation() -> None:
    assert replay(ContainerLogSource(gen.log_file("output_drift"), allow_unverified=True)).ok


def test_generator_is_deterministic(tmp_path: Path) -> None:
    # The stored fixtures are exactly what the generator writes today.
    again = tmp_path / "clean.avro"
    write_log(gen.clean_log(), again, prefix=gen.PREFIX)
    assert again.read_bytes() == gen.log_file("clean").read_bytes()


def test_fixtures_stay_small() -> None:
    sizes = {p.name: p.stat().st_size for p in gen.FIXTURES.glob("*.avro")}
    assert len(sizes) == 8
    assert max(sizes.values()) < 16_000, sizes
