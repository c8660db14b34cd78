"""Node fusion: a synchronous tail runs in its upstream's task and reports as if it did not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.nodes import (
    EdgeSpec,
    Graph,
    Item,
    NodeContext,
    NodeEnded,
    OutputReport,
    Report,
    TranscriptText,
    TurnOutcome,
)
from streams.nodes.fusion import fused_tails


class Upper:
    """Sync: one upper-cased copy per input; fails on "boom"; flush emits a marker."""

    def __init__(self, tag: str, flush_marker: bool = False) -> None:
        self.tag, self.flush_marker = tag, flush_marker

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        assert isinstance(item, TranscriptText)
        if item.text == "boom":
            raise ValueError(f"{self.tag} cannot take boom")
        yield TranscriptText(f"{self.tag}:{item.text}", final=item.final)

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        if self.flush_marker:
            yield TranscriptText(f"{self.tag}:flushed", final=True)

    def close(self) -> None:
        """Nothing to release."""


class Yielding(Upper):
    """The head: awaits between inputs like a real streaming node."""

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        await asyncio.sleep(0)
        async for out in super().process(item, ctx):
            yield out


def _graph(*, fused: bool, flush_marker: bool = True) -> Graph:
    return Graph(
        nodes={
            "head": lambda: Yielding("h"),
            "a": lambda: Upper("a", flush_marker=flush_marker),
            "b": lambda: Upper("b", flush_marker=flush_marker),
        },
        edges=[EdgeSpec("head", "a", 2), EdgeSpec("a", "b", 2)],
        entry="head",
        inline={"a", "b"} if fused else set(),
    )


Script = list[tuple[str, str]]  # ("feed", text) | ("cancel_node", node) | ("yield", "")


async def _drive(graph: Graph, script: Script) -> tuple[TurnOutcome, list[Report]]:
    reports: list[Report] = []
    run = graph.start_turn(session_id="s", turn_id="t", correlation_id="c", reporter=reports.append)
    for op, arg in script:
        if op == "feed":
            await run.feed(TranscriptText(arg, final=True))
        elif op == "cancel_node":
            run.cancel_node(arg)
        for _ in range(8):  # let the graph take the item all the way through, either shape
            await asyncio.sleep(0)
    await run.end_input()
    return await run.wait(), reports


def _view(outcome: TurnOutcome, reports: list[Report]) -> tuple[object, ...]:
    outputs = [(r.node_id, r.index, r.item.text) for r in reports if isinstance(r, OutputReport)]  # type: ignore[attr-defined]
    ended = sorted((r.node_id, r.status, r.outputs) for r in reports if isinstance(r, NodeEnded))
    return outcome.status, outcome.failed_node, outputs, ended


def test_fused_tails_only_cover_linear_inline_tails() -> None:
    order = ("in", "x", "y", "z")
    chain = [EdgeSpec("<input>", "in", 1), EdgeSpec("in", "x", 1), EdgeSpec("x", "y", 1), EdgeSpec("y", "z", 1)]
    assert fused_tails(order, chain, {"x", "y", "z"}, entry_src="<input>") == {"in": ("x", "y", "z")}
    # A non-inline node at the end breaks the tail before it: nothing may wait on a queue.
    assert fused_tails(order, chain, {"x", "y"}, entry_src="<input>") == {}
    assert fused_tails(order, chain, {"y", "z"}, entry_src="<input>") == {"x": ("y", "z")}
    # The entry is fed by the caller: it keeps its own task and queue.
    assert fused_tails(order, chain, {"in", "x", "y", "z"}, entry_src="<input>") == {"in": ("x", "y", "z")}
    fan_out = [EdgeSpec("<input>", "in", 1), EdgeSpec("in", "x", 1), EdgeSpec("in", "y", 1)]
    assert fused_tails(("in", "x", "y"), fan_out, {"x", "y"}, entry_src="<input>") == {}


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("feed"), st.sampled_from(["hi", "there", "boom"])),
            st.tuples(st.just("cancel_node"), st.sampled_from(["head", "a", "b"])),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_a_fused_tail_reports_what_one_task_per_node_reports(script: Script, marker: bool) -> None:
    fused = asyncio.run(_drive(_graph(fused=True, flush_marker=marker), script))
    separate = asyncio.run(_drive(_graph(fused=False, flush_marker=marker), script))
    assert _view(*fused) == _view(*separate)


def test_a_failing_fused_node_fails_the_turn_under_its_own_name() -> None:
    outcome, reports = asyncio.run(_drive(_graph(fused=True), [("feed", "ok"), ("feed", "boom")]))
    assert (outcome.status, outcome.failed_node) == ("failed", "head")  # the head sees boom first
    graph = Graph(
        nodes={"head": lambda: Yielding("h"), "a": lambda: Upper("a")},
        edges=[EdgeSpec("head", "a", 2)],
        entry="head",
        inline={"a"},
    )

    class Picky(Upper):
        async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
            raise RuntimeError("a refuses everything")
            yield

    graph.nodes["a"] = lambda: Picky("a")
    outcome, reports = asyncio.run(_drive(graph, [("feed", "x")]))
    assert (outcome.status, outcome.failed_node) == ("failed", "a")
    assert outcome.error == "RuntimeError: a refuses everything"
    ended = {r.node_id: r.status for r in reports if isinstance(r, NodeEnded)}
    assert ended == {"head": "cancelled", "a": "failed"}


def test_a_fused_node_that_cannot_be_built_fails_the_turn() -> None:
    def broken() -> Upper:
        raise OSError("no model")

    graph = Graph(
        nodes={"head": lambda: Yielding("h"), "a": broken},
        edges=[EdgeSpec("head", "a", 2)],
        entry="head",
        inline={"a"},
    )
    outcome, _ = asyncio.run(_drive(graph, [("feed", "x")]))
    assert (outcome.status, outcome.failed_node, outcome.error) == ("failed", "a", "OSError: no model")


def test_cancelling_the_turn_cancels_fused_nodes_too() -> None:
    async def scenario() -> tuple[TurnOutcome, list[Report]]:
        reports: list[Report] = []
        run = _graph(fused=True).start_turn(
            session_id="s", turn_id="t", correlation_id="c", reporter=reports.append
        )
        await run.feed(TranscriptText("hi", final=True))
        await asyncio.sleep(0.01)
        run.cancel()
        return await run.wait(), reports

    outcome, reports = asyncio.run(scenario())
    assert outcome.status == "cancelled"
    ended = {r.node_id: r.status for r in reports if isinstance(r, NodeEnded)}
    assert ended == {"head": "cancelled", "a": "cancelled", "b": "cancelled"}


@pytest.mark.parametrize(("node", "silenced"), [("a", {"a", "b"}), ("b", {"b"})])
def test_a_cancelled_fused_node_passes_nothing_on_and_the_rest_still_flush(
    node: str, silenced: set[str]
) -> None:
    script: Script = [("feed", "one"), ("cancel_node", node), ("feed", "two")]
    outcome, reports = asyncio.run(_drive(_graph(fused=True), script))
    outputs = [(r.node_id, r.item.text) for r in reports if isinstance(r, OutputReport)]  # type: ignore[attr-defined]
    ended = {r.node_id: r.status for r in reports if isinstance(r, NodeEnded)}
    assert outcome.status == "completed"
    assert ("b", "b:a:h:one") in outputs  # before the cancel: through the whole tail
    assert ("head", "h:two") in outputs  # the head goes on
    assert not [n for n, text in outputs if n in silenced and text.endswith("two")]
    assert ended[node] == "cancelled" and ended["head"] == "done"
    if node == "a":
        assert ended["b"] == "done"  # it still flushed (its flush marker is an output)
        assert ("b", "b:flushed") in outputs


def _entry_then_tail(fused: bool) -> Graph:
    # e (entry, fails on "boom") -> h -> a -> b (a, b inline)
    return Graph(
        nodes={
            "e": lambda: Upper("e"),
            "h": lambda: Yielding("h"),
            "a": lambda: Upper("a", flush_marker=True),
            "b": lambda: Upper("b", flush_marker=True),
        },
        edges=[EdgeSpec("e", "h", 2), EdgeSpec("h", "a", 2), EdgeSpec("a", "b", 2)],
        entry="e",
        inline={"a", "b"} if fused else set(),
    )


@pytest.mark.parametrize("fused", [True, False])
def test_after_another_node_failed_a_node_cancel_flushes_nothing(fused: bool) -> None:
    async def scenario() -> tuple[TurnOutcome, list[Report]]:
        reports: list[Report] = []
        run = _entry_then_tail(fused).start_turn(
            session_id="s", turn_id="t", correlation_id="c", reporter=reports.append
        )
        await run.feed(TranscriptText("one", final=True))
        for _ in range(10):
            await asyncio.sleep(0)
        await run.feed(TranscriptText("boom", final=True))  # e wakes first and fails
        run.cancel_node("h")  # h's wake-up comes after e's failure
        return await run.wait(), reports

    outcome, reports = asyncio.run(scenario())
    assert (outcome.status, outcome.failed_node) == ("failed", "e")
    flushed = [r for r in reports if isinstance(r, OutputReport) and r.item.text.endswith("flushed")]  # type: ignore[attr-defined]
    assert flushed == []
    ended = {r.node_id: r.status for r in reports if isinstance(r, NodeEnded)}
    assert ended["a"] == ended["b"] == "cancelled"


def test_a_repeated_node_cancel_does_not_strand_the_turn() -> None:
    class Twice(Upper):
        async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
            yield item
            yield item

    class Sleepy(Upper):
        async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
            await asyncio.sleep(0.05)
            return
            yield

    async def scenario() -> list[TurnOutcome]:
        graph = Graph(
            nodes={"e": lambda: Twice("e"), "d": lambda: Sleepy("d")},
            edges=[EdgeSpec("e", "d", 1)],
            entry="e",
        )
        run = graph.start_turn(session_id="s", turn_id="t", correlation_id="c")
        ended: list[TurnOutcome] = []
        run.on_done(ended.append)
        await run.feed(TranscriptText("x", final=True))  # d takes one, the edge holds the other
        for _ in range(5):
            await asyncio.sleep(0)
        run.cancel_node("e")  # e swallows it, then waits to put its end marker on the full edge
        await asyncio.sleep(0)
        run.cancel_node("e")  # a client retrying the same cancel
        await asyncio.wait_for(run.wait(), 5)
        await asyncio.sleep(0)
        return ended

    ended = asyncio.run(scenario())
    assert [o.status for o in ended] == ["completed"]
