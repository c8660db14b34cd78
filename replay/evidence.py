"""The replay artifact (``pipelines/replay/or02_baseline_v1.yaml``) turned into checks.

The L0 requirements are compiled once into getters over :class:`Envelope`;
invariant 14 makes them mandatory for every accepted turn whatever the
recording level, so only L0 is enforced here. :class:`ReplayPolicy` is one
mode's ``checks`` plus the ``divergence_policy``: what runs, what fails, what
is tolerated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import ArtifactValidationError
from pipelines.loader import load_artifact
from pipelines.models.evidence import REPLAY_CHECKS, ReplayEvidenceManifest
from pipelines.shipped import PIPELINES_DIR
from replay.errors import ReplayError
from replay.model import Divergence, DivergenceKind
from streams.abi.events import EventType

__all__ = ["DEFAULT_ARTIFACT", "EvidenceRules", "ReplayPolicy", "load_rules"]

DEFAULT_ARTIFACT = PIPELINES_DIR / "replay" / "or02_baseline_v1.yaml"
Getter = Callable[[Any], Any]


def _getter(path: str) -> Getter:
    parts = tuple(path.split("."))

    def get(obj: Any) -> Any:
        for part in parts:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj

    return get


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceRules:
    """What replay needs from the artifact: L0 fields per event type."""

    artifact: ReplayEvidenceManifest
    l0: dict[EventType, tuple[tuple[str, Getter], ...]]

    def missing(self, event_type: EventType, env: Any) -> list[str]:
        """Names of L0 fields of ``env`` that are absent or empty."""
        out: list[str] = []
        for name, get in self.l0.get(event_type, ()):
            value = get(env)
            if value is None or value == "":
                out.append(name)
        return out

    def policy(self, mode: str) -> ReplayPolicy:
        """The checks and tolerances of ``mode`` (``verify`` or ``resimulate``)."""
        found = next((m for m in self.artifact.modes if m.name == mode), None)
        if found is None:
            raise ReplayError(f"{self.artifact.origin}: no replay mode {mode!r} in modes[]")
        policy = self.artifact.divergence_policy
        return ReplayPolicy(
            checks=frozenset(DivergenceKind(c) for c in found.checks),
            fail_on=frozenset(DivergenceKind(c) for c in policy.fail_on),
            max_skew_ms={DivergenceKind(t.check): t.max_skew_ms for t in policy.tolerate},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayPolicy:
    checks: frozenset[DivergenceKind]
    fail_on: frozenset[DivergenceKind]
    max_skew_ms: dict[DivergenceKind, int | None]  # the tolerated checks

    def runs(self, kind: DivergenceKind) -> bool:
        return kind in self.checks

    def judge(self, found: Iterable[Divergence]) -> tuple[list[Divergence], list[Divergence]]:
        """(failing, tolerated) among ``found``; divergences of checks the mode does not run
        are dropped, and a check the policy vocabulary cannot name always fails."""
        failing: list[Divergence] = []
        tolerated: list[Divergence] = []
        for div in found:
            if div.kind not in self.checks and div.kind.value in REPLAY_CHECKS:
                continue  # a check the policy can name but this mode does not run
            if div.kind in self.fail_on or div.kind not in self.max_skew_ms:
                failing.append(div)
                continue
            limit = self.max_skew_ms[div.kind]
            within = limit is None or (div.skew_ms is not None and div.skew_ms <= limit)
            (tolerated if within else failing).append(div)
        return failing, tolerated


@functools.cache
def load_rules(path: Path = DEFAULT_ARTIFACT) -> EvidenceRules:
    loaded, issues = load_artifact(path)
    if loaded is None:
        raise ReplayError(f"{path}: {ArtifactValidationError(issues)}")
    manifest = loaded.model
    if not isinstance(manifest, ReplayEvidenceManifest):
        raise ReplayError(f"{path}: kind {manifest.kind!r} (expected ReplayEvidenceManifest)")
    l0: dict[EventType, tuple[tuple[str, Getter], ...]] = {}
    for req in manifest.required_fields:
        if req.level != "L0":
            continue
        try:
            event_type = EventType(req.event.upper())
        except ValueError:
            raise ReplayError(f"{path}: required_fields names unknown event {req.event!r}") from None
        l0[event_type] = l0.get(event_type, ()) + tuple((f, _getter(f)) for f in req.fields)
    return EvidenceRules(artifact=manifest, l0=l0)
