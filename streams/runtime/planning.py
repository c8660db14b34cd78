"""Freezing a turn's plan at OPEN from the session, the lease and the routing snapshot."""

from __future__ import annotations

from pipelines.models.resolved import PipelineBundle
from pipelines.plans import FrozenTurnPlan, TurnPlanResolver
from streams.abi import events as ev
from streams.runtime.sessions import SessionState

__all__ = ["TurnPlanner", "is_past_turn", "next_turn_id"]


class TurnPlanner:
    """Builds the inputs of :class:`TurnPlanResolver` from runtime state (one per engine).

    Plans are frozen with :meth:`TurnPlanResolver.freeze`: the same plan (hash and
    canonical JSON) as ``resolve`` with the snapshots built from the same values.
    """

    def __init__(self, *, bundle: PipelineBundle, processor_id: str, prefix: str) -> None:
        self.bundle = bundle
        self.processor_id = processor_id
        self.prefix = prefix
        self.resolver = TurnPlanResolver()

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
            tenant_id=session.tenant_id,
            session_id=session.session_id,
            next_seq=session.next_seq,
            last_epoch=session.epoch,
            turn_id=turn_id,
            trigger=trigger,
            correlation_id=trigger_event.correlation.correlation_id,
            # The client's clock, not ours: a replayed plan derives the same value.
            opened_at_us=int(trigger_event.ts.timestamp() * 1_000_000),
            epoch=epoch,
            partition=session.partition,
        )

    def warmup_plan(self) -> FrozenTurnPlan:
        """A plan of the bundle's shape, to build graphs (load models) before the first turn."""
        return self._freeze(
            tenant_id="__warmup__",
            session_id="__warmup__",
            next_seq=0,
            last_epoch=0,
            turn_id="warmup",
            trigger="warmup",
            correlation_id="warmup",
            opened_at_us=0,
            epoch=0,
            partition=0,
        )

    def _freeze(
        self,
        *,
        tenant_id: str,
        session_id: str,
        next_seq: int,
        last_epoch: int,
        turn_id: str,
        trigger: str,
        correlation_id: str,
        opened_at_us: int,
        epoch: int,
        partition: int,
    ) -> FrozenTurnPlan:
        return self.resolver.freeze(
            bundle=self.bundle,
            tenant_id=tenant_id,
            session_id=session_id,
            pinned_bundle_digest=self.bundle.digest,
            next_seq=next_seq,
            last_epoch=last_epoch,
            open_turns=0,
            turn_id=turn_id,
            trigger=trigger,
            correlation_id=correlation_id,
            opened_at_us=opened_at_us,
            lease_epoch=epoch,
            lease_holder=self.processor_id,
            lease_partition=partition,
            topic_prefix=self.prefix,
            routing_partition=partition,
            processor_id=self.processor_id,
        )


def next_turn_id(session: SessionState) -> str:
    """Turn ids are ``<session>-t<n>``: deterministic, unique for the session's whole life."""
    return f"{session.session_id}-t{session.turns_done + 1}"


def is_past_turn(session: SessionState, turn_id: str) -> bool:
    """True when ``turn_id`` names a turn of ``session`` that has already closed."""
    prefix = f"{session.session_id}-t"
    number = turn_id[len(prefix) :] if turn_id.startswith(prefix) else ""
    return number.isdigit() and 0 < int(number) <= session.turns_done
