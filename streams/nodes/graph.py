"""Run one turn through a DAG of nodes joined by bounded queues.

Each node runs as its own task; an edge is a bounded :class:`asyncio.Queue`
with the capacity the spec declares, so a slow consumer makes its producer
wait instead of buffering without limit. All tasks of a turn form one cancel
scope (:meth:`TurnRun.cancel`); :meth:`TurnRun.cancel_node` stops a single
node and sends its downstream an end marker so the rest of the graph drains.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal

from streams.nodes.errors import GraphError, NodeTimeoutError
from streams.nodes.fusion import FusedTail, StageFailed, fused_tails
from streams.nodes.items import END_OF_INPUT, EndOfInput, Item
from streams.nodes.node import (
    Node,
    NodeContext,
    NodeEnded,
    NodeFactory,
    NodeStatus,
    OutputReport,
    Reporter,
    discard_report,
)

__all__ = ["INPUT", "EdgeSpec", "Graph", "TurnOutcome", "TurnRun"]

INPUT = "<input>"  # the source name of the edge the caller feeds


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    src: str
    dst: str
    capacity: int


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    status: Literal["completed", "cancelled", "failed"]
    nodes: tuple[NodeEnded, ...]
    failed_node: str | None = None
    error: str | None = None


class _Edge:
    """A bounded queue that can be closed when its consumer is gone."""

    __slots__ = ("closed", "high_water", "queue", "spec")

    def __init__(self, spec: EdgeSpec) -> None:
        self.spec = spec
        self.queue: asyncio.Queue[Item | EndOfInput] = asyncio.Queue(maxsize=spec.capacity)
        self.closed = False
        self.high_water = 0

    async def put(self, item: Item | EndOfInput) -> None:
        # A cancelled consumer never drains again: drop instead of blocking the producer.
        if self.closed:
            return
        await self.queue.put(item)
        self.high_water = max(self.high_water, self.queue.qsize())

    def offer(self, item: Item | EndOfInput) -> bool:
        """Put without waiting; False when the queue is full (nothing was put)."""
        if self.closed:
            return True
        if self.queue.full():
            return False
        self.queue.put_nowait(item)
        self.high_water = max(self.high_water, self.queue.qsize())
        return True

    def close(self) -> None:
        self.closed = True
        while not self.queue.empty():
            self.queue.get_nowait()


class Graph:
    """A validated graph of node factories; :meth:`start_turn` instantiates it per turn."""

    def __init__(
        self,
        *,
        nodes: Mapping[str, NodeFactory],
        edges: Sequence[EdgeSpec],
        entry: str,
        input_capacity: int = 16,
        timeouts_s: Mapping[str, float] | None = None,
        inline: Collection[str] = (),
    ) -> None:
        """``inline``: nodes that never await; a linear tail of them runs in the task of the
        node in front of it (see :mod:`streams.nodes.fusion`)."""
        self.nodes = dict(nodes)
        self.entry = entry
        self.timeouts_s = dict(timeouts_s or {})
        if entry not in self.nodes:
            raise GraphError(f"entry node {entry!r} is not declared")
        self.edges = (EdgeSpec(INPUT, entry, input_capacity), *edges)
        for edge in self.edges:
            for end in (edge.src, edge.dst):
                if end != INPUT and end not in self.nodes:
                    raise GraphError(f"edge {edge.src}->{edge.dst}: unknown node {end!r}")
            if edge.capacity < 1:
                raise GraphError(f"edge {edge.src}->{edge.dst}: capacity must be >= 1 (bounded)")
        self.order = self._topological_order()
        self.fused = fused_tails(self.order, self.edges, inline, entry_src=INPUT)
        self.fused_into = {n: head for head, tail in self.fused.items() for n in tail}

    def _topological_order(self) -> tuple[str, ...]:
        indegree = {n: 0 for n in self.nodes}
        for edge in self.edges:
            indegree[edge.dst] += 1
        ready = sorted(n for n, d in indegree.items() if d == 0)
        if ready:
            raise GraphError(f"node(s) {ready} have no input edge and would never run")
        order: list[str] = []
        frontier = [INPUT]
        while frontier:
            src = frontier.pop(0)
            for edge in self.edges:
                if edge.src == src:
                    indegree[edge.dst] -= 1
                    if indegree[edge.dst] == 0:
                        order.append(edge.dst)
                        frontier.append(edge.dst)
        if len(order) != len(self.nodes):
            raise GraphError(f"graph has a cycle through {sorted(set(self.nodes) - set(order))}")
        return tuple(order)

    def start_turn(
        self,
        *,
        session_id: str,
        turn_id: str,
        correlation_id: str,
        causation_id: str | None = None,
        trace_id: str | None = None,
        reporter: Reporter = discard_report,
        turn_timeout_s: float | None = None,
    ) -> TurnRun:
        """Create this turn's nodes and start their tasks (needs a running loop).

        ``turn_timeout_s`` caps every provider call by the turn's end; each node's
        own budget bounds its work per input (see ``_run_node``).
        """
        deadline = (
            None if turn_timeout_s is None else time.monotonic_ns() + int(turn_timeout_s * 1e9)
        )
        contexts = {
            node_id: NodeContext(
                session_id=session_id,
                turn_id=turn_id,
                node_id=node_id,
                correlation_id=correlation_id,
                causation_id=causation_id,
                trace_id=trace_id,
                deadline_ns=deadline,
                report=reporter,
            )
            for node_id in self.order
        }
        return TurnRun(self, contexts, reporter)


class TurnRun:
    """One turn in flight: feed input, cancel (turn or node), wait for the outcome."""

    def __init__(self, graph: Graph, contexts: dict[str, NodeContext], reporter: Reporter) -> None:
        self._graph = graph
        self._report = reporter
        self._edges = [_Edge(spec) for spec in graph.edges]
        self._input = self._edges[0]
        self._turn_cancelled = False
        self._node_cancels: set[str] = set()
        self._started: set[str] = set()
        self._ended: dict[str, NodeEnded] = {}
        self._failure: tuple[str, str] | None = None
        self._pumps: dict[str, list[asyncio.Task[None]]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_done: list[Callable[[TurnOutcome], None]] = []
        self._running = 0
        self._contexts = contexts
        self._tails: dict[str, FusedTail] = {}  # head node -> its fused tail, while it runs
        for node_id in graph.order:
            if node_id in graph.fused_into:
                continue  # runs inside its head's task
            inbox = self._inbox(node_id)
            self._tasks[node_id] = asyncio.create_task(
                self._run_node(node_id, contexts[node_id], inbox), name=f"node:{node_id}"
            )
        for task in self._all_tasks():
            self._running += 1
            task.add_done_callback(self._task_done)

    def _inbox(self, node_id: str) -> tuple[asyncio.Queue[Item | EndOfInput], int]:
        incoming = [e for e in self._edges if e.spec.dst == node_id]
        if len(incoming) == 1:
            return incoming[0].queue, 1
        # Fan-in: one pump per edge into a 1-slot merge queue keeps every edge's bound intact.
        merged: asyncio.Queue[Item | EndOfInput] = asyncio.Queue(maxsize=1)
        self._pumps[node_id] = [asyncio.create_task(self._pump(e, merged)) for e in incoming]
        return merged, len(incoming)

    @staticmethod
    async def _pump(edge: _Edge, merged: asyncio.Queue[Item | EndOfInput]) -> None:
        while True:
            item = await edge.queue.get()
            await merged.put(item)
            if isinstance(item, EndOfInput):
                return

    # -- caller side -------------------------------------------------------

    async def feed(self, item: Item) -> None:
        """Send one input item to the entry node; waits while the input edge is full."""
        await self._input.put(item)

    async def end_input(self) -> None:
        """Signal the end of the utterance: the entry node flushes, then the graph drains."""
        await self._input.put(END_OF_INPUT)

    def offer(self, item: Item | EndOfInput) -> bool:
        """:meth:`feed` (or, with ``END_OF_INPUT``, :meth:`end_input`) without waiting:
        False when the input edge is full and the caller must ``await`` instead."""
        return self._input.offer(item)

    def on_done(self, callback: Callable[[TurnOutcome], None]) -> None:
        """Call ``callback(outcome)`` once every task of the turn has ended (as :meth:`wait`
        would return it), without a task waiting for that."""
        self._on_done.append(callback)

    def _task_done(self, _task: asyncio.Task[None]) -> None:
        self._running -= 1
        if self._running == 0 and self._on_done:
            outcome = self._outcome()
            for callback in self._on_done:
                callback(outcome)

    def cancel(self) -> None:
        """Cancel the turn scope: every node task and provider call stops."""
        self._turn_cancelled = True
        self._input.close()
        for task in self._all_tasks():
            task.cancel()

    def cancel_node(self, node_id: str) -> None:
        """Cancel one node; its downstream receives an end marker and finishes normally."""
        if node_id not in self._tasks and node_id not in self._graph.fused_into:
            raise GraphError(f"cannot cancel unknown node {node_id!r}")
        if node_id in self._ended or node_id in self._node_cancels:
            return  # done already, or a repeated cancel: it must not hit the end-marker put
        self._node_cancels.add(node_id)
        head = self._graph.fused_into.get(node_id)
        if head is not None:
            if self._turn_cancelled or self._failure is not None:
                return  # the turn is over: nothing flushes any more
            # A fused node never awaits, so no item is inside it now: end it and flush the
            # nodes after it here (its head has not built it yet: it does so at start).
            tail = self._tails.get(head)
            if tail is not None:
                try:
                    tail.end_at(node_id)
                except StageFailed as exc:
                    self._fail(exc.node_id, exc.error, tail.count(exc.node_id))
            return
        # A task cancelled before its first step never runs its handler, so a node
        # that has not started notices the flag itself instead (see _run_node).
        if node_id in self._started:
            self._tasks[node_id].cancel()

    async def wait(self) -> TurnOutcome:
        """Wait for every node; if this wait is cancelled, the whole turn is cancelled."""
        tasks = self._all_tasks()
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            self.cancel()
            await asyncio.wait(tasks)
            raise
        return self._outcome()

    def _outcome(self) -> TurnOutcome:
        for node_id in self._graph.order:
            if node_id not in self._ended:  # cancelled before its task ever ran
                self._finish(node_id, "cancelled", 0, None)
        ended = tuple(self._ended[n] for n in self._graph.order)
        if self._failure is not None:
            return TurnOutcome(
                "failed", ended, failed_node=self._failure[0], error=self._failure[1]
            )
        return TurnOutcome("cancelled" if self._turn_cancelled else "completed", ended)

    def _all_tasks(self) -> list[asyncio.Task[None]]:
        return [*self._tasks.values(), *(p for ps in self._pumps.values() for p in ps)]

    def edge_high_water(self) -> dict[tuple[str, str], int]:
        """Largest queue length seen per edge (tests and telemetry: bounds held)."""
        return {(e.spec.src, e.spec.dst): e.high_water for e in self._edges}

    # -- node side -----------------------------------------------------------

    async def _run_node(
        self, node_id: str, ctx: NodeContext, inbox: tuple[asyncio.Queue[Item | EndOfInput], int]
    ) -> None:
        tail: FusedTail | None = None
        try:
            fused = self._graph.fused.get(node_id, ())
            if fused:
                try:
                    tail = FusedTail.build(
                        fused,
                        factories=self._graph.nodes,
                        contexts=self._contexts,
                        report=self._report,
                        cancelled=self._node_cancels.__contains__,
                        finish=self._finish,
                    )
                    self._tails[node_id] = tail
                    for fused_id in fused:  # cancelled before the head started
                        if fused_id in self._node_cancels:
                            tail.end_at(fused_id)
                except StageFailed as exc:
                    self._finish(node_id, "cancelled", 0, None)
                    self._fail(exc.node_id, exc.error, tail.count(exc.node_id) if tail else 0)
                    return
            status, failure = await self._run_own(node_id, ctx, inbox, tail)
            over = self._turn_cancelled or self._failure is not None
            if failure is None and tail is not None and not over:
                try:
                    await tail.end()  # what the node passed on still flushes through its tail
                except StageFailed as exc:
                    failure = (exc.node_id, exc.error, tail.count(exc.node_id))
            if failure is not None:
                self._fail(*failure)
                return
            if tail is None:  # a fused tail ends at the sink: there is nobody to tell
                marker = END_OF_INPUT if status == "done" else EndOfInput("cancelled")
                for edge in self._edges:
                    if edge.spec.src == node_id:
                        await edge.put(marker)
        finally:
            if tail is not None:
                self._tails.pop(node_id, None)
                for node, outputs in tail.counts():
                    if node not in self._ended:  # failed or cancelled with the turn
                        self._finish(node, "cancelled", outputs, None)
                tail.close()

    async def _run_own(
        self,
        node_id: str,
        ctx: NodeContext,
        inbox: tuple[asyncio.Queue[Item | EndOfInput], int],
        tail: FusedTail | None,
    ) -> tuple[NodeStatus, tuple[str, str, int] | None]:
        """Run one node over its inbox; returns its status and (node, error, outputs) of a
        failure, its own or a fused node's. A turn cancel is re-raised."""
        queue, upstreams = inbox
        outs = [] if tail is not None else [e for e in self._edges if e.spec.src == node_id]
        count = 0
        status: NodeStatus = "done"
        error: str | None = None

        async def emit(item: Item, start_ns: int) -> None:
            nonlocal count
            self._report(OutputReport(node_id, item, count, start_ns, time.monotonic_ns()))
            count += 1
            if tail is not None:
                await tail.push(item)
            for edge in outs:
                await edge.put(item)

        node: Node | None = None
        self._started.add(node_id)
        try:
            if node_id in self._node_cancels:
                raise asyncio.CancelledError
            node = self._graph.nodes[node_id]()
            # The budget bounds the work on each input (and the final flush), not the
            # node's lifetime: a streaming node waits for input as long as the user speaks.
            budget = self._graph.timeouts_s.get(node_id)
            ended = 0
            while ended < upstreams:
                item = await queue.get()
                if isinstance(item, EndOfInput):
                    ended += 1
                    continue
                start = time.monotonic_ns()
                async with asyncio.timeout(budget), aclosing(node.process(item, ctx)) as outputs:
                    async for out in outputs:
                        await emit(out, start)
            start = time.monotonic_ns()
            async with asyncio.timeout(budget), aclosing(node.flush(ctx)) as outputs:
                async for out in outputs:
                    await emit(out, start)
        except asyncio.CancelledError:
            if self._turn_cancelled or node_id not in self._node_cancels:
                self._finish(node_id, "cancelled", count, None)
                raise
            status = "cancelled"  # node scope: swallow, let downstream drain
        except StageFailed as exc:  # a fused node failed on this node's output
            self._finish(node_id, "cancelled", count, None)
            return "cancelled", (exc.node_id, exc.error, tail.count(exc.node_id) if tail else 0)
        except TimeoutError:
            status, error = "failed", str(NodeTimeoutError(f"node {node_id!r} overran its budget"))
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            if node is not None:
                node.close()
        if status == "failed":
            return status, (node_id, error or "", count)
        self._finish(node_id, status, count, error)
        return status, None

    def _fail(self, node_id: str, error: str, count: int) -> None:
        self._finish(node_id, "failed", count, error)
        self._failure = self._failure or (node_id, error)
        self._cancel_others(node_id)

    def _finish(self, node_id: str, status: NodeStatus, count: int, error: str | None) -> None:
        # The node no longer drains its inputs: close them so upstream puts never block.
        for edge in self._edges:
            if edge.spec.dst == node_id:
                edge.close()
        for pump in self._pumps.get(node_id, ()):
            pump.cancel()
        self._ended[node_id] = NodeEnded(node_id, status, count, error)
        self._report(self._ended[node_id])

    def _cancel_others(self, failed: str) -> None:
        self._input.close()
        for node_id, task in self._tasks.items():
            if node_id != failed:
                task.cancel()
        for task in self._all_tasks():
            if task not in self._tasks.values():
                task.cancel()
