"""Node fusion: a graph's synchronous tail runs inside its upstream's task.

Like operator chaining in Flink, nodes that never await (``inline`` kinds such
as text normalisation or a rule responder) are not worth a task and a queue
each: when they form a linear chain ending at the sink, the node in front of
the chain calls them directly for every item it emits. Reports are the same as
with one task per node — every fused node's outputs, in order, and its own
``NodeEnded``. Because a fused node never awaits and the chain has no queue at
its end, a node-scope cancel can only land between items, exactly where it
would land on a node of its own; it then passes nothing on and the nodes after
it still flush, as they would after an end marker.

Only a tail is fused (no queue after the chain): a fused node whose outputs
waited on a downstream queue could be cancelled mid-item, which a task of its
own would handle differently.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Collection, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Protocol

from streams.nodes.items import Item
from streams.nodes.node import Node, NodeContext, NodeFactory, NodeStatus, OutputReport, Reporter

__all__ = ["FusedTail", "StageFailed", "fused_tails"]


class _EdgeLike(Protocol):
    @property
    def src(self) -> str: ...
    @property
    def dst(self) -> str: ...


def fused_tails(
    order: Sequence[str], edges: Sequence[_EdgeLike], inline: Collection[str], *, entry_src: str
) -> dict[str, tuple[str, ...]]:
    """``{head: (fused nodes in order)}`` for every linear tail of inline nodes.

    A node joins its upstream's task when it is inline, its only input comes from
    that upstream (not the turn input ``entry_src``), that upstream has no other
    output, and everything after it is such a chain down to a sink.
    """
    ins: dict[str, list[str]] = {n: [] for n in order}
    outs: dict[str, list[str]] = {n: [] for n in order}
    outs[entry_src] = []
    for e in edges:
        ins[e.dst].append(e.src)
        outs.setdefault(e.src, []).append(e.dst)

    def joins(node: str) -> bool:
        src = ins[node]
        return (
            node in inline
            and len(src) == 1
            and src[0] != entry_src
            and len(outs[src[0]]) == 1
            and all(joins(nxt) for nxt in outs[node])
        )

    tails: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for node in order:
        if joins(node):
            head = owner.get(ins[node][0], ins[node][0])
            owner[node] = head
            tails[head] = (*tails.get(head, ()), node)
    return tails


class StageFailed(Exception):  # noqa: N818 - carries another node's failure, not a new kind
    """A fused node raised: the failure is that node's, not the task owner's."""

    def __init__(self, node_id: str, error: str) -> None:
        super().__init__(error)
        self.node_id = node_id
        self.error = error


@dataclass(slots=True)
class _Stage:
    node_id: str
    ctx: NodeContext
    node: Node
    count: int = 0


@dataclass(slots=True, kw_only=True)
class FusedTail:
    """The fused nodes of one task, created with the turn (one node object each)."""

    report: Reporter
    cancelled: Callable[[str], bool]  # node-scope cancel flag of a fused node
    finish: Callable[[str, NodeStatus, int, str | None], None]
    stages: list[_Stage] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        *,
        factories: Mapping[str, NodeFactory],
        contexts: Mapping[str, NodeContext],
        report: Reporter,
        cancelled: Callable[[str], bool],
        finish: Callable[[str, NodeStatus, int, str | None], None],
    ) -> FusedTail:
        tail = cls(report=report, cancelled=cancelled, finish=finish)
        for node_id in ids:
            try:
                node = factories[node_id]()
            except Exception as exc:
                tail.close()
                raise StageFailed(node_id, f"{type(exc).__name__}: {exc}") from None
            tail.stages.append(_Stage(node_id, contexts[node_id], node))
        return tail

    async def push(self, item: Item, at: int = 0) -> None:
        """Run ``item`` through the stages from ``at`` on, reporting every output."""
        if at >= len(self.stages):
            return
        stage = self.stages[at]
        if stage.node_id in self.ended or self.cancelled(stage.node_id):
            return
        await self._drain(at, stage.node.process(item, stage.ctx))

    async def _drain(self, at: int, outputs: AsyncGenerator[Item, None]) -> None:
        """Report what stage ``at`` yields and pass each item on; its errors are its own."""
        stage = self.stages[at]
        start = time.monotonic_ns()
        try:
            async with aclosing(outputs) as items:
                async for out in items:
                    self._emit(stage, out, start)
                    await self.push(out, at + 1)
        except StageFailed:
            raise
        except Exception as exc:
            raise StageFailed(stage.node_id, f"{type(exc).__name__}: {exc}") from None

    def end_at(self, node_id: str) -> None:
        """A node-scope cancel of ``node_id``: it ends now and the stages after it flush now,
        as they would on the end marker of a node with its own task. Inline nodes never
        await, so this runs to completion synchronously."""
        at = next((i for i, s in enumerate(self.stages) if s.node_id == node_id), None)
        if at is None or node_id in self.ended:
            return
        coro = self._end(from_stage=at)
        try:
            coro.send(None)
        except StopIteration:
            return
        coro.close()
        raise StageFailed(node_id, "an inline node awaited while its tail was ending")

    async def end(self) -> None:
        """Flush the stages in order (a cancelled one ends as cancelled, the rest still flush)."""
        await self._end(from_stage=0)

    async def _end(self, *, from_stage: int) -> None:
        for at, stage in enumerate(self.stages):
            if at < from_stage or stage.node_id in self.ended:
                continue
            self.ended.add(stage.node_id)
            if self.cancelled(stage.node_id):
                self.finish(stage.node_id, "cancelled", stage.count, None)
                continue
            await self._drain(at, stage.node.flush(stage.ctx))
            self.finish(stage.node_id, "done", stage.count, None)

    def count(self, node_id: str) -> int:
        return next((s.count for s in self.stages if s.node_id == node_id), 0)

    def counts(self) -> list[tuple[str, int]]:
        """(node id, outputs so far) of every stage, in order."""
        return [(s.node_id, s.count) for s in self.stages]

    def close(self) -> None:
        for stage in self.stages:
            stage.node.close()

    def _emit(self, stage: _Stage, out: Item, start: int) -> None:
        self.report(OutputReport(stage.node_id, out, stage.count, start, time.monotonic_ns()))
        stage.count += 1
