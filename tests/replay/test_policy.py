"""A replay applies the policy file: the mode's checks, ``fail_on`` and ``tolerate``."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.models.evidence import REPLAY_CHECKS, Tolerance
from replay.api import replay
from replay.evidence import DEFAULT_ARTIFACT
from replay.model import DivergenceKind, ReplayResult
from replay.sources import ContainerLogSource
from replay.testing import write_log
from streams.abi.events import EventType
from tests.replay import gen_fixtures as gen

SHIPPED = DEFAULT_ARTIFACT.read_text()


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def _skewed_log(tmp_path: Path, skew_ms: int) -> Path:
    """The clean log with t1's TURN_COMMIT stamped ``skew_ms`` before the record it follows."""
    log = gen.clean_log()
    i = gen._find(log, "t1", EventType.TURN_COMMIT)
    log[i] = dataclasses.replace(log[i], ts=log[i - 1].ts - timedelta(milliseconds=skew_ms))
    path = tmp_path / f"skew{skew_ms}.avro"
    write_log(log, path, prefix=gen.PREFIX)
    return path


def _replay(log: Path, artifact: Path = DEFAULT_ARTIFACT) -> ReplayResult:
    return replay(ContainerLogSource(log, allow_unverified=True), bundle_dirs=(gen.BUNDLE.parent,),
                  artifact=artifact)


def test_a_clock_skew_within_the_tolerance_passes_and_is_reported(tmp_path: Path) -> None:
    result = _replay(_skewed_log(tmp_path, 30))
    assert result.ok and result.exit_code == 0
    [tolerated] = result.tolerated
    assert (tolerated.kind, tolerated.turn_id, tolerated.skew_ms) == (DivergenceKind.TIMING, "t1", 30.0)
    assert result.to_dict()["summary"]["tolerated"] == 1


def test_a_clock_skew_beyond_the_tolerance_fails(tmp_path: Path) -> None:
    result = _replay(_skewed_log(tmp_path, 80))
    assert not result.ok and result.exit_code == 1
    assert [(d.kind, d.turn_id) for d in result.divergences] == [(DivergenceKind.TIMING, "t1")]
    # The tolerance is read from the file: raise it and the same log passes.
    looser = _policy(tmp_path, SHIPPED.replace("max_skew_ms: 50", "max_skew_ms: 100"))
    assert _replay(_skewed_log(tmp_path, 80), looser).ok


def test_a_fail_on_divergence_fails_and_a_tolerated_one_does_not(tmp_path: Path) -> None:
    log = gen.log_file("post_cancel_output")
    shipped = _replay(log)
    assert not shipped.ok
    assert [d.kind for d in shipped.divergences] == [DivergenceKind.CANCEL]

    fail_on = "            bundle_pinning, plan_change, cancel_fencing, correlation_chain, duplicate_output,\n"
    assert fail_on in SHIPPED
    tolerant = _policy(tmp_path, SHIPPED.replace(fail_on, fail_on.replace("cancel_fencing, ", ""))
                       .replace("  tolerate:\n", "  tolerate:\n    - {check: cancel_fencing}\n"))
    relaxed = _replay(log, tolerant)
    assert relaxed.ok and relaxed.exit_code == 0
    assert DivergenceKind.CANCEL in {d.kind for d in relaxed.tolerated}


def test_a_check_the_mode_does_not_list_does_not_run(tmp_path: Path) -> None:
    log = gen.log_file("post_cancel_output")
    verify = "    checks: [evidence_completeness, lifecycle_order, sequence, epoch_fencing, plan_hash,\n"
    assert verify in SHIPPED
    checks = "             bundle_pinning, cancel_fencing, correlation_chain, duplicate_output, timing]"
    assert verify + checks in SHIPPED
    without = SHIPPED.replace(verify + checks, verify + checks.replace("cancel_fencing, ", ""))
    result = _replay(log, _policy(tmp_path, without))
    assert result.ok and not any(d.kind is DivergenceKind.CANCEL for d in result.tolerated)


def test_a_check_that_runs_must_fail_or_be_tolerated(tmp_path: Path) -> None:
    from replay.errors import ReplayError

    unjudged = SHIPPED.replace("    - {check: timing, max_skew_ms: 50}\n", "    []\n").replace(
        "  tolerate:\n    []\n", "  tolerate: []\n")
    with pytest.raises(ReplayError, match=r"runs \['timing'\], which are in neither"):
        _replay(gen.log_file("clean"), _policy(tmp_path, unjudged))
    with pytest.raises(ValidationError, match="max_skew_ms is required for check 'timing'"):
        Tolerance(check="timing")
    with pytest.raises(ValidationError, match="only for it"):
        Tolerance(check="plan_hash", max_skew_ms=5)


def test_the_policy_vocabulary_is_the_replay_checks() -> None:
    assert list(REPLAY_CHECKS) == [k.value for k in DivergenceKind]
