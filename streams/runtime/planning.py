"""Freezing a turn's plan at OPEN from the session, the lease and the routing snapshot."""

from __future__ import annotations

from pipelines.models.plan import (
    NO_DECISIONS,
    LeaseSnapshot,
    RoutingSnapshot,
    SessionSnapshot,
    TurnOpenRequest,
    lease_snapshot,
    plan_inputs,
    routing_snapshot,
    session_snapshot,
    turn_open_request,
)
from pipelines.models.resolved import PipelineBundle
from pipelines.plans import FrozenTurnPlan, TurnPlanResolver
from streams.abi import events as ev
from streams.runtime.sessions import SessionState

__all__ = ["TurnPlanner", "is_past_turn", "next_turn_id"]


class TurnPlanner:
    """Builds the :class:`PlanInputs` of a turn from runtime state (one per engine).

    Plans are frozen with :meth:`TurnPlanResolver.freeze`: the same plan (hash and
    canonical JSON) as ``resolve`` with the same snapshots.
    """

    def __init__(self, *, bundle: PipelineBundle, processor_id: str, prefix: str) -> None:
        self.bundle = bundle
        self.processor_id = processor_id
        self.prefix = prefix
        self.resolver = TurnPlanResolver()
        # Lease and routing snapshots change only with the epoch or the partition.
        self._authority: dict[tuple[int, int], tuple[LeaseSnapshot, RoutingSnapshot]] = {}

    def plan(
        self,
        session: SessionState,
        trigger_event: ev.Envelope,
        *,
        turn_id: str,
        trigger: str,
        epoch: int,
    ) -> FrozenTurnPlan:
        return self._freeze(
            session_snapshot(
                tenant_id=session.tenant_id,
                session_id=session.session_id,
                pinned_bundle_digest=self.bundle.digest,
                next_seq=session.next_seq,
                last_epoch=session.epoch,
            ),
            turn_open_request(
                turn_id=turn_id,
                trigger=trigger,
                correlation_id=trigger_event.correlation.correlation_id,
                # The client's clock, not ours: a replayed plan derives the same value.
                opened_at_us=int(trigger_event.ts.timestamp() * 1_000_000),
            ),
            epoch=epoch,
            partition=session.partition,
        )

    def warmup_plan(self) -> FrozenTurnPlan:
        """A plan of the bundle's shape, to build graphs (load models) before the first turn."""
        return self._freeze(
            session_snapshot(
                tenant_id="__warmup__",
                session_id="__warmup__",
                pinned_bundle_digest=self.bundle.digest,
                next_seq=0,
                last_epoch=0,
            ),
            turn_open_request(
                turn_id="warmup", trigger="warmup", correlation_id="warmup", opened_at_us=0
            ),
            epoch=0,
            partition=0,
        )

    def _freeze(
        self, session: SessionSnapshot, turn: TurnOpenRequest, *, epoch: int, partition: int
    ) -> FrozenTurnPlan:
        authority = self._authority.get((epoch, partition))
        if authority is None:
            if len(self._authority) >= 1024:  # bounded: epochs only grow, old ones are dead
                self._authority.clear()
            authority = self._authority[epoch, partition] = (
                lease_snapshot(epoch=epoch, holder=self.processor_id, partition=partition),
                routing_snapshot(
                    topic_prefix=self.prefix, partition=partition, processor_id=self.processor_id
                ),
            )
        lease, routing = authority
        inputs = plan_inputs(
            session=session, turn=turn, lease=lease, routing=routing, policy_decisions=NO_DECISIONS
        )
        return self.resolver.freeze(self.bundle, inputs)


def next_turn_id(session: SessionState) -> str:
    """Turn ids are ``<session>-t<n>``: deterministic, unique for the session's whole life."""
    return f"{session.session_id}-t{session.turns_done + 1}"


def is_past_turn(session: SessionState, turn_id: str) -> bool:
    """True when ``turn_id`` names a turn of ``session`` that has already closed."""
    prefix = f"{session.session_id}-t"
    number = turn_id[len(prefix) :] if turn_id.startswith(prefix) else ""
    return number.isdigit() and 0 < int(number) <= session.turns_done
