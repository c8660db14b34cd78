"""The hook object the processor calls; :data:`NO_OBSERVER` does nothing (the default).

The runtime calls these at points it already has: every event it appends (the writer),
every control record it dispatches, every transaction end, and a periodic sample of its
queues at commit time. Metrics and traces are derived from those calls only, so what they
report is what the log says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streams.abi.events import Envelope

__all__ = ["NO_OBSERVER", "Fanout", "Observer", "RuntimeSample"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeSample:
    """The processor's queues and state at one commit."""

    sessions: int
    open_turns: int
    lane_depth: Mapping[str, int]
    paused_partitions: int


class Observer:
    """No-op base: metrics off, tracing off. Subclasses override what they need."""

    enabled = False

    def logged(self, event: Envelope) -> None:
        """An event was appended to the log, leases or DLQ (inside the open transaction)."""

    def control_dispatched(self, timestamp_ms: int) -> None:
        """A control record produced at ``timestamp_ms`` (its Kafka timestamp) is applied now."""

    def transaction(self, *, committed: bool, seconds: float) -> None:
        """A transaction ended: committed (it took ``seconds``) or aborted."""

    def sample(self, sample: RuntimeSample) -> None:
        """The processor's queues, read on its own loop at commit time."""

    def trace_id(self, tenant: str, session: str, given: str | None) -> str | None:
        """The trace id a new turn carries in its correlation (``given``: the input's)."""
        return given

    def close(self) -> None:
        """The processor stops: end what is still open."""


NO_OBSERVER = Observer()


class Fanout(Observer):
    """Several observers (metrics and tracing) behind one hook."""

    enabled = True

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = tuple(o for o in observers if o.enabled)

    def logged(self, event: Envelope) -> None:
        for o in self.observers:
            o.logged(event)

    def control_dispatched(self, timestamp_ms: int) -> None:
        for o in self.observers:
            o.control_dispatched(timestamp_ms)

    def transaction(self, *, committed: bool, seconds: float) -> None:
        for o in self.observers:
            o.transaction(committed=committed, seconds=seconds)

    def sample(self, sample: RuntimeSample) -> None:
        for o in self.observers:
            o.sample(sample)

    def trace_id(self, tenant: str, session: str, given: str | None) -> str | None:
        for o in self.observers:
            given = o.trace_id(tenant, session, given)
        return given

    def close(self) -> None:
        for o in self.observers:
            o.close()
