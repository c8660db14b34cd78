"""MVP gates: evaluate a GatesManifest against a recorded run.

Every metric comes from machinery that already exists: divergence counts from
the replay checks, latencies from audit queries over the same export. A gate
whose metric is unknown fails (a manifest cannot pass by naming nothing).
"""

from __future__ import annotations

import operator
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.loader import load_artifact
from pipelines.models.evidence import Gate, GatesManifest
from pipelines.shipped import PIPELINES_DIR
from replay.api import replay
from replay.audit import AuditStore
from replay.errors import ReplayError
from replay.model import DivergenceKind, ReplayResult
from replay.sources import ContainerLogSource

__all__ = ["DEFAULT_MANIFEST", "GateResult", "GatesError", "evaluate_gates", "load_gates"]

# The packaged manifest, found from any working directory.
DEFAULT_MANIFEST = PIPELINES_DIR / "tests" / "mvp_gates_manifest_v1.yaml"

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
}

# End of speech (or a final transcript) to the first accepted output, per turn.
_EOU_TO_FIRST_AUDIO = """
WITH trigger AS (
    SELECT turn_id, min(ts) AS at FROM events
    WHERE turn_id IS NOT NULL
      AND (event_type = 'END_OF_UTTERANCE' OR (event_type = 'TRANSCRIPT' AND p_kind = 'FINAL'))
    GROUP BY turn_id),
first_out AS (
    SELECT turn_id, min(ts) AS at FROM events WHERE event_type = 'OUTPUT_ACCEPTED' GROUP BY turn_id)
SELECT quantile_disc((epoch_us(o.at) - epoch_us(t.at)) / 1000.0, 0.95) AS p95, count(*) AS turns
FROM trigger t JOIN first_out o USING (turn_id)
"""


class GatesError(ReplayError):
    """The manifest or the recording cannot be evaluated."""

    exit_code = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class GateResult:
    gate: Gate
    value: float | None
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        g = self.gate
        return {
            "id": g.id,
            "category": g.category,
            "metric": g.metric,
            "op": g.op,
            "threshold": g.threshold,
            "unit": g.unit,
            "value": self.value,
            "passed": self.passed,
            "detail": self.detail,
        }


def load_gates(path: Path) -> GatesManifest:
    loaded, issues = load_artifact(path)
    if loaded is None or not isinstance(loaded.model, GatesManifest):
        raise GatesError(str(issues[0]) if issues else f"{path}: not a GatesManifest")
    return loaded.model


def _turns_with(result: ReplayResult, kind: DivergenceKind) -> int:
    return len({(d.session_id, d.turn_id) for d in result.divergences if d.kind is kind})


def _events_with(result: ReplayResult, kind: DivergenceKind) -> int:
    return sum(1 for d in result.divergences if d.kind is kind)


def _metrics(
    export: Path, result: ReplayResult, store: AuditStore
) -> dict[str, tuple[float | None, str]]:
    eou = store.sql(_EOU_TO_FIRST_AUDIO)[0]
    cancels = [
        r["cancel_to_abort_us"]
        for r in store.report("cancels")
        if r.get("cancel_to_abort_us") is not None
    ]
    cancels.sort()
    p99 = (
        cancels[min(len(cancels) - 1, round(0.99 * (len(cancels) - 1)))] / 1000.0
        if cancels
        else None
    )
    return {
        "end_of_utterance_to_first_audio_ms_p95": (
            eou["p95"],
            f"audit: {eou['turns']} turns with a trigger and output",
        ),
        "outputs_accepted_after_cancel": (
            float(_events_with(result, DivergenceKind.CANCEL)),
            "replay: cancel_fencing divergences",
        ),
        "cancel_queue_wait_ms_p99": (
            p99,
            f"audit: cancel (client clock) to abort over {len(cancels)} cancels",
        ),
        "stale_epoch_events_accepted": (
            float(_events_with(result, DivergenceKind.EPOCH)),
            "replay: epoch_fencing divergences",
        ),
        "accepted_turns_missing_l0_evidence": (
            float(_turns_with(result, DivergenceKind.EVIDENCE)),
            "replay: evidence_completeness divergences",
        ),
        "turns_with_invalid_lifecycle": (
            float(_turns_with(result, DivergenceKind.LIFECYCLE)),
            "replay: lifecycle_order divergences",
        ),
    }


def evaluate_gates(manifest: GatesManifest, export: Path) -> list[GateResult]:
    """Evaluate every gate of ``manifest`` on the export directory ``export``."""
    if not export.is_dir():
        raise GatesError(f"{export}: not an export directory (see `rspp export`)")
    result = replay(ContainerLogSource(export))
    with tempfile.TemporaryDirectory(prefix="rspp-gates-") as tmp:
        store = AuditStore(Path(tmp) / "gates.duckdb")
        store.load_export(export)
        metrics = _metrics(export, result, store)
    out = []
    for gate in manifest.gates:
        if gate.metric not in metrics:
            out.append(
                GateResult(
                    gate=gate, value=None, passed=False, detail=f"unknown metric {gate.metric!r}"
                )
            )
            continue
        value, detail = metrics[gate.metric]
        if value is None:
            out.append(
                GateResult(gate=gate, value=None, passed=False, detail=f"no data ({detail})")
            )
            continue
        out.append(
            GateResult(
                gate=gate, value=value, passed=_OPS[gate.op](value, gate.threshold), detail=detail
            )
        )
    return out
