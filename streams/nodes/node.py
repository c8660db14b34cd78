"""The node contract, the per-call context and what the runner reports.

A node is created fresh for each turn (it may keep per-utterance state) and is
driven by the graph runner: :meth:`Node.process` once per input item, then
:meth:`Node.flush` once when every upstream has ended. Both are async
generators, so a node can emit zero or many items per input (partials,
20 ms audio chunks) and every ``await`` is a cancellation point.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from streams.nodes.items import Item

__all__ = [
    "FallbackDecision",
    "Node",
    "NodeContext",
    "NodeEnded",
    "NodeFactory",
    "OutputReport",
    "Report",
    "Reporter",
    "discard_report",
]


@dataclass(frozen=True, slots=True)
class OutputReport:
    """One item a node emitted; ``start_ns`` is when it began the input that produced it."""

    node_id: str
    item: Item
    index: int  # 0-based position among this node's outputs in the turn
    start_ns: int  # time.monotonic_ns()
    end_ns: int


@dataclass(frozen=True, slots=True)
class FallbackDecision:
    """A provider chain moved on: retry (``to == from``), fall back, or degrade.

    ``attempt`` is the 1-based number of the failed attempt within the chain
    call, so the decisions of one call are totally ordered.
    """

    node_id: str
    from_provider: str
    to_provider: str | None  # None: nothing left, the call fails
    reason: str
    attempt: int


NodeStatus = Literal["done", "cancelled", "failed"]


@dataclass(frozen=True, slots=True)
class NodeEnded:
    node_id: str
    status: NodeStatus
    outputs: int
    error: str | None = None


Report = OutputReport | FallbackDecision | NodeEnded
Reporter = Callable[[Report], None]


def discard_report(_report: Report) -> None:
    """Reporter for callers that do not record (tests, the demo synthesiser)."""


@dataclass(frozen=True, slots=True)
class NodeContext:
    """Who a node call is for and by when it must finish.

    ``deadline_ns`` is absolute ``time.monotonic_ns()``; providers shorten
    their own timeouts to it so a retry never outlives the turn budget.
    """

    session_id: str
    turn_id: str
    node_id: str
    correlation_id: str
    causation_id: str | None = None
    trace_id: str | None = None
    deadline_ns: int | None = None
    report: Reporter = field(default=discard_report, compare=False, repr=False)

    def remaining_s(self) -> float | None:
        if self.deadline_ns is None:
            return None
        return max(0.0, (self.deadline_ns - time.monotonic_ns()) / 1e9)


class Node(Protocol):
    """An async, cancellable graph node (one instance per turn).

    ``close`` runs exactly once when the node's task ends, whatever the
    outcome (done, cancelled, failed), so pooled resources go back promptly.
    """

    def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]: ...

    def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]: ...

    def close(self) -> None: ...


NodeFactory = Callable[[], Node]
