"""Rollout resolution: which bundle a new session gets, and session pinning.

Cohort assignment is a pure function of (rollout name, tenant, session id):
sha256 of the three, first 8 bytes as an integer, modulo 10 000 basis points.
A session is a candidate when its bucket is below the current stage's percent.
Excluded tenants always get the baseline; forced tenants always the candidate.

:class:`SessionPins` makes the first answer final: once a session has a bundle,
later lookups return it even after the rollout manifest moves or rolls back.

    resolver = RolloutResolver(manifest)
    pins = SessionPins(path)             # or SessionPins() in memory
    assignment = pins.assign(resolver, tenant="t1", session_id="s1")
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from pipelines.errors import RolloutError
from pipelines.models.rollout import RolloutManifest

__all__ = ["BASIS_POINTS", "Assignment", "RolloutResolver", "SessionPins", "cohort_bucket"]

BASIS_POINTS = 10_000


def cohort_bucket(rollout: str, tenant: str, session_id: str) -> int:
    """Stable bucket in ``[0, 10000)``; the NUL separator keeps ("ab","c") apart from ("a","bc")."""
    key = "\x00".join((rollout, tenant, session_id)).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % BASIS_POINTS


@dataclass(frozen=True, slots=True)
class Assignment:
    tenant: str
    session_id: str
    bundle: str  # name@version
    digest: str
    cohort: str  # "baseline" | "candidate"
    rollout: str  # name@version of the manifest that decided
    stage: str
    bucket: int
    reason: str
    pinned: bool = False


class RolloutResolver:
    def __init__(self, manifest: RolloutManifest) -> None:
        self.manifest = manifest

    def assign(self, *, tenant: str, session_id: str) -> Assignment:
        if not tenant or not session_id:
            raise RolloutError("tenant and session id must be non-empty")
        m = self.manifest
        stage = m.stage
        bucket = cohort_bucket(m.metadata.name, tenant, session_id)
        threshold = round(stage.percent * BASIS_POINTS / 100)
        if tenant in m.tenants.exclude:
            cohort, reason = "baseline", f"tenant {tenant} is excluded from {m.metadata.name}"
        elif tenant in m.tenants.force_candidate:
            cohort, reason = "candidate", f"tenant {tenant} is forced onto the candidate"
        elif bucket < threshold:
            cohort, reason = "candidate", (f"bucket {bucket} < {threshold} (stage {stage.name}: "
                                           f"{stage.percent:g}% of {BASIS_POINTS} basis points)")
        else:
            cohort, reason = "baseline", (f"bucket {bucket} >= {threshold} (stage {stage.name}: "
                                          f"{stage.percent:g}% of {BASIS_POINTS} basis points)")
        pin = m.candidate if cohort == "candidate" else m.baseline
        return Assignment(tenant=tenant, session_id=session_id, bundle=pin.bundle, digest=pin.digest, cohort=cohort,
                          rollout=m.ref, stage=stage.name, bucket=bucket, reason=reason)


class SessionPins:
    """Session -> assignment, first write wins. Optional JSON file for persistence across processes.

    In production the runtime's session changelog is the source of truth for the
    pinned bundle; this store is what the control plane and CLI use.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._pins: dict[str, Assignment] = {}
        if path is not None and path.exists():
            try:
                raw = orjson.loads(path.read_bytes())
                self._pins = {k: Assignment(**v) for k, v in raw.items()}
            except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
                raise RolloutError(f"{path}: session pin file is corrupt ({exc}); expected JSON written by "
                                   "SessionPins") from None

    @staticmethod
    def _key(tenant: str, session_id: str) -> str:
        return f"{tenant}\x00{session_id}"

    def get(self, *, tenant: str, session_id: str) -> Assignment | None:
        return self._pins.get(self._key(tenant, session_id))

    def assign(self, resolver: RolloutResolver, *, tenant: str, session_id: str) -> Assignment:
        """The pinned assignment if there is one, else a fresh one, pinned."""
        key = self._key(tenant, session_id)
        with self._lock:
            existing = self._pins.get(key)
            if existing is not None:
                return Assignment(**{**asdict(existing), "pinned": True})
            fresh = resolver.assign(tenant=tenant, session_id=session_id)
            self._pins[key] = fresh
            self._save()
            return fresh

    def release(self, *, tenant: str, session_id: str) -> None:
        """Forget a closed session."""
        with self._lock:
            if self._pins.pop(self._key(tenant, session_id), None) is not None:
                self._save()

    def __len__(self) -> int:
        return len(self._pins)

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({k: asdict(v) for k, v in self._pins.items()}, option=orjson.OPT_SORT_KEYS))
        tmp.replace(self._path)
