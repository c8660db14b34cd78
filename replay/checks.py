"""Per-turn checks that need the whole turn: evidence, lifecycle, plan hash, correlation ids.

Checks that depend on log order across turns (epoch fencing, cancel fencing,
causation) run inline in :mod:`replay.engine` as records stream past.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pipelines.errors import PipelinesError
from pipelines.models.plan import ResolvedTurnPlan
from pipelines.models.resolved import PipelineBundle
from pipelines.plans import TurnPlanResolver, plan_from_json
from replay.bundles import BundleIndex
from replay.evidence import EvidenceRules
from replay.model import Divergence, DivergenceKind, Position
from streams.abi.events import Envelope, EventType, TurnOpen
from streams.runtime.lifecycle import Marker, first_violation

__all__ = [
    "MARKERS",
    "RECORDED_INPUTS",
    "PlanCheck",
    "PlanChecker",
    "TurnEvents",
    "check_correlation_ids",
    "check_evidence",
    "check_lifecycle",
    "plan_paths_differ",
]

TurnEvents = Sequence[tuple[Position, Envelope]]

MARKERS: dict[EventType, Marker] = {
    EventType.TURN_OPEN: Marker.OPEN,
    EventType.TURN_ACTIVE: Marker.ACTIVE,
    EventType.TURN_COMMIT: Marker.COMMIT,
    EventType.TURN_ABORT: Marker.ABORT,
    EventType.TURN_CLOSE: Marker.CLOSE,
}
# Copied from ingress (data or control lane): they keep the client's correlation.
RECORDED_INPUTS = frozenset({
    EventType.AUDIO_CHUNK, EventType.TRANSCRIPT, EventType.END_OF_UTTERANCE, EventType.CANCEL,
})


def _div(kind: DivergenceKind, pos: Position | None, env: Envelope | None, *, session_id: str,
         turn_id: str | None, expected: str, actual: str, message: str,
         node_id: str | None = None, diff: str | None = None) -> Divergence:
    return Divergence(kind=kind, session_id=session_id, turn_id=turn_id, position=pos,
                      node_id=node_id if node_id is not None else (env.node_id if env else None),
                      expected=expected, actual=actual, message=message, diff=diff)


def check_evidence(rules: EvidenceRules, session_id: str, turn_id: str,
                   events: TurnEvents) -> list[Divergence]:
    out: list[Divergence] = []
    for pos, env in events:
        if env.event_type not in rules.l0:
            continue
        missing = rules.missing(env.event_type, env)
        if missing:
            out.append(_div(DivergenceKind.EVIDENCE, pos, env, session_id=session_id,
                            turn_id=turn_id, expected=f"L0 fields {', '.join(missing)} set",
                            actual="missing or empty",
                            message=f"{env.event_type.value} lacks L0 evidence {', '.join(missing)}"))
    return out


def check_lifecycle(session_id: str, turn_id: str, events: TurnEvents, *,
                    require_closed: bool) -> list[Divergence]:
    marked = [(pos, env, MARKERS[env.event_type]) for pos, env in events
              if env.event_type in MARKERS]
    out: list[Divergence] = []
    found = first_violation((m for _, _, m in marked), require_closed=require_closed)
    if found is not None:
        index, message = found
        pos, env = (marked[index][0], marked[index][1]) if index < len(marked) else (None, None)
        out.append(_div(DivergenceKind.LIFECYCLE, pos, env, session_id=session_id, turn_id=turn_id,
                        expected="OPEN → ACTIVE → COMMIT|ABORT → CLOSE",
                        actual=" → ".join(m.value for _, _, m in marked) or "no markers",
                        message=message))
    for pos, env in events:
        if env.event_type is EventType.TURN_OPEN:
            break
        if env.event_type not in MARKERS:
            out.append(_div(DivergenceKind.LIFECYCLE, pos, env, session_id=session_id,
                            turn_id=turn_id, expected="no turn event before TURN_OPEN",
                            actual=env.event_type.value,
                            message=f"{env.event_type.value} before TURN_OPEN"))
            break
    return out


def check_correlation_ids(session_id: str, turn_id: str, events: TurnEvents) -> list[Divergence]:
    opened = next((env for _, env in events if env.event_type is EventType.TURN_OPEN), None)
    if opened is None:
        return []
    want = opened.correlation.correlation_id
    for pos, env in events:
        if env.event_type not in RECORDED_INPUTS and env.correlation.correlation_id != want:
            return [_div(DivergenceKind.CORRELATION, pos, env, session_id=session_id,
                         turn_id=turn_id, expected=want, actual=env.correlation.correlation_id,
                         message=f"{env.event_type.value} carries another correlation_id than TURN_OPEN")]
    return []


def plan_paths_differ(a: Any, b: Any, path: str = "", limit: int = 3) -> list[str]:
    """Up to ``limit`` JSON paths where two plan documents differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += plan_paths_differ(a.get(key), b.get(key), f"{path}.{key}" if path else key, limit)
            if len(out) >= limit:
                break
        return out[:limit]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += plan_paths_differ(x, y, f"{path}[{i}]", limit)
            if len(out) >= limit:
                break
        return out[:limit]
    return [] if a == b else [f"{path}: {_short(a)} → {_short(b)}"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class PlanCheck(NamedTuple):
    """A turn's plan divergences, the plan to re-simulate with and the plan as recorded."""

    divergences: list[Divergence]
    plan: ResolvedTurnPlan | None  # None: unusable for re-simulation
    recorded: ResolvedTurnPlan | None  # None: no TURN_OPEN or unreadable plan_json


@dataclass(slots=True)
class PlanChecker:
    """Re-derives each recorded plan from its recorded bundle (or a candidate bundle)."""

    bundles: BundleIndex
    candidate: PipelineBundle | None = None
    resolver: TurnPlanResolver = field(default_factory=TurnPlanResolver)

    def check(self, session_id: str, turn_id: str, events: TurnEvents) -> PlanCheck:
        """Divergences of the turn's plan, the plan to re-simulate with and the recorded plan."""
        found = next(((p, e) for p, e in events if e.event_type is EventType.TURN_OPEN), None)
        if found is None:
            return PlanCheck([], None, None)
        pos, env = found
        assert isinstance(env.payload, TurnOpen)
        recorded = env.payload.plan_hash

        def div(expected: str, actual: str, message: str, *, diff: str | None = None,
                kind: DivergenceKind = DivergenceKind.PLAN_HASH, at: Position = pos,
                ev: Envelope = env, node: str | None = None) -> Divergence:
            return _div(kind, at, ev, session_id=session_id, turn_id=turn_id, node_id=node,
                        expected=expected, actual=actual, message=message, diff=diff)

        out: list[Divergence] = []
        try:
            plan = plan_from_json(env.payload.plan_json)
        except PipelinesError as exc:
            return PlanCheck([div(recorded, "unreadable plan_json", str(exc))], None, None)
        if plan.plan_hash != recorded:
            out.append(div(recorded, plan.plan_hash, "TURN_OPEN plan_hash differs from its plan_json"))
        stray = next(((p, e) for p, e in events if e.plan_hash != recorded), None)
        if stray is not None:
            out.append(div(recorded, str(stray[1].plan_hash),
                           f"{stray[1].event_type.value} carries another plan_hash than TURN_OPEN "
                           "(one plan per turn)", at=stray[0], ev=stray[1]))
        bundle = self.bundles.get(plan.bundle_digest, wanted_by=f" (turn {turn_id} at {pos})")
        if self.candidate is not None:
            return PlanCheck(out + self._candidate(plan, div), self._candidate_plan(plan), plan)
        try:
            # Hash first (cheap); build the re-derived plan only to explain a mismatch.
            same = self.resolver.rederive_hash(plan, bundle) == plan.plan_hash
            again = plan if same else self.resolver.rederive(plan, bundle)
        except PipelinesError as exc:
            return PlanCheck([*out, div(recorded, "re-derivation failed", str(exc))], plan, plan)
        if again.plan_hash != plan.plan_hash:
            paths = plan_paths_differ(plan.model_dump(mode="json"), again.model_dump(mode="json"))
            paths = [p for p in paths if not p.startswith("plan_hash")] or paths
            out.append(div(plan.plan_hash, again.plan_hash,
                           f"re-deriving the plan from {bundle.ref} gives another plan_hash",
                           diff="recorded → re-derived: " + "; ".join(paths)))
        return PlanCheck(out, plan, plan)

    def _candidate_plan(self, plan: ResolvedTurnPlan) -> ResolvedTurnPlan | None:
        assert self.candidate is not None
        inputs = plan.inputs.model_copy(update={"session": plan.inputs.session.model_copy(
            update={"pinned_bundle_digest": self.candidate.digest})})
        try:
            return self.resolver.rederive(plan.model_copy(update={"inputs": inputs}), self.candidate)
        except PipelinesError:
            return None

    def _candidate(self, plan: ResolvedTurnPlan, div: Any) -> list[Divergence]:
        assert self.candidate is not None
        new = self._candidate_plan(plan)
        if new is None:
            return [div(plan.bundle_id, self.candidate.ref, "candidate bundle cannot plan this turn",
                        kind=DivergenceKind.PLAN_CHANGE)]
        old_nodes = {n.id: n.model_dump(mode="json") for n in plan.nodes}
        new_nodes = {n.id: n.model_dump(mode="json") for n in new.nodes}
        out: list[Divergence] = []
        for node_id in sorted(set(old_nodes) | set(new_nodes)):
            a, b = old_nodes.get(node_id), new_nodes.get(node_id)
            if a == b:
                continue
            what = ("added" if a is None else "removed" if b is None else
                    "; ".join(plan_paths_differ(a, b)))
            out.append(div(plan.bundle_id, self.candidate.ref, f"node {node_id} {what.split(';')[0]}",
                           diff=what, kind=DivergenceKind.PLAN_CHANGE, node=node_id))
        return out
