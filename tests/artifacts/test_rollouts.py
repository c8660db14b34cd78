"""Deterministic cohorts and session pinning."""

from __future__ import annotations

from pathlib import Path

from pipelines.models import RolloutManifest
from pipelines.rollouts import RolloutResolver, SessionPins, cohort_bucket
from pipelines.validate import ArtifactSet


def _manifest(shipped: ArtifactSet) -> RolloutManifest:
    m = shipped.find("RolloutManifest", "canary_10pct@1.0.0")
    assert isinstance(m, RolloutManifest)
    return m


def test_canary_share_over_100k_sessions(shipped: ArtifactSet) -> None:
    resolver = RolloutResolver(_manifest(shipped))
    n = 100_000
    candidates = sum(
        resolver.assign(tenant=f"tenant-{i % 97}", session_id=f"session-{i}").cohort == "candidate" for i in range(n)
    )
    assert abs(candidates / n - 0.10) <= 0.005


def test_same_session_same_bundle(shipped: ArtifactSet) -> None:
    a, b = RolloutResolver(_manifest(shipped)), RolloutResolver(_manifest(shipped))
    for i in range(500):
        x, y = a.assign(tenant="t", session_id=f"s{i}"), b.assign(tenant="t", session_id=f"s{i}")
        assert (x.bundle, x.digest, x.bucket) == (y.bundle, y.digest, y.bucket)
    assert cohort_bucket("r", "ab", "c") != cohort_bucket("r", "a", "bc")


def test_tenant_rules(shipped: ArtifactSet) -> None:
    resolver = RolloutResolver(_manifest(shipped))
    assert {resolver.assign(tenant="tenant-regulated", session_id=f"s{i}").cohort for i in range(300)} == {"baseline"}
    assert {resolver.assign(tenant="tenant-dogfood", session_id=f"s{i}").cohort for i in range(300)} == {"candidate"}


def test_pinned_session_keeps_its_bundle_when_the_rollout_moves(tmp_path: Path, shipped: ArtifactSet) -> None:
    manifest = _manifest(shipped)
    full = manifest.model_copy(update={"current_stage": "full"})
    pins = SessionPins(tmp_path / "pins.json")
    before = {f"s{i}": pins.assign(RolloutResolver(manifest), tenant="t", session_id=f"s{i}") for i in range(200)}
    assert any(a.cohort == "baseline" for a in before.values())
    reloaded = SessionPins(tmp_path / "pins.json")  # survives a restart
    for sid, first in before.items():
        again = reloaded.assign(RolloutResolver(full), tenant="t", session_id=sid)
        assert (again.bundle, again.digest, again.pinned) == (first.bundle, first.digest, True)
    fresh = reloaded.assign(RolloutResolver(full), tenant="t", session_id="new-session")
    assert fresh.cohort == "candidate" and not fresh.pinned
    reloaded.release(tenant="t", session_id="s0")
    assert reloaded.get(tenant="t", session_id="s0") is None
