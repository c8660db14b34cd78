"""Version-skew checks the runtime runs before executing a bundle."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines.errors import RolloutError
from pipelines.models import PipelineBundle, VersionSkewPolicy
from pipelines.rollouts import SessionPins
from pipelines.skew import check_skew
from pipelines.validate import ArtifactSet

TODAY = dt.date(2026, 1, 1)


def _policy(shipped: ArtifactSet) -> VersionSkewPolicy:
    policy = shipped.find("VersionSkewPolicy", "version_skew_policy@1.0.0")
    assert isinstance(policy, VersionSkewPolicy)
    return policy


def test_shipped_bundles_run_on_this_runtime(shipped: ArtifactSet, bundle_v1: PipelineBundle,
                                             bundle_v1_1: PipelineBundle) -> None:
    for bundle in (bundle_v1, bundle_v1_1):
        assert check_skew(_policy(shipped), bundle, runtime_abi="1.0.0", today=TODAY) == []


@pytest.mark.parametrize(("runtime", "expected"), [
    ("2.0.0", "outside the supported range"), ("1.3.0", "minor skew 3"), ("1.2.0", None)])
def test_abi_skew(shipped: ArtifactSet, bundle_v1: PipelineBundle, runtime: str, expected: str | None) -> None:
    problems = check_skew(_policy(shipped), bundle_v1, runtime_abi=runtime, today=TODAY)
    assert (expected is None and problems == []) or any(expected in p for p in problems if expected)


def test_node_window_and_removed_deprecation(shipped: ArtifactSet, bundle_v1: PipelineBundle) -> None:
    policy = _policy(shipped)
    narrow = policy.model_copy(update={"node_packages": policy.node_packages[1:]})
    assert any("stt.pocketsphinx has no version window" in p
               for p in check_skew(narrow, bundle_v1, runtime_abi="1.0.0", today=TODAY))
    dep = policy.deprecations[0].model_copy(update={"subject": "node_type:tts.espeak_ng"})
    gone = policy.model_copy(update={"deprecations": (dep,)})
    assert check_skew(gone, bundle_v1, runtime_abi="1.0.0", today=TODAY) == []
    late = check_skew(gone, bundle_v1, runtime_abi="1.0.0", today=dt.date(2027, 7, 1))
    assert any("removed after 2027-06-01" in p for p in late)


def test_corrupt_pin_file_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "pins.json"
    bad.write_text("[1, 2")
    with pytest.raises(RolloutError, match="corrupt"):
        SessionPins(bad)
