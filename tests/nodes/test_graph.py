"""Graph runner: bounded edges, fan-in, failures, budgets, validation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from streams.nodes import (
    EdgeSpec,
    Graph,
    GraphError,
    Item,
    NodeContext,
    NodeEnded,
    OutputReport,
    ReplyText,
    Report,
    TranscriptText,
    TurnOutcome,
)


class Burst:
    """Emits ``n`` transcripts per input, as fast as the edge lets it."""

    def __init__(self, n: int, log: list[tuple[str, int]]) -> None:
        self.n, self.log = n, log

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        for i in range(self.n):
            self.log.append(("produced", i))
            yield TranscriptText(f"{i}", final=True)

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        return
        yield

    def close(self) -> None:
        pass


class Slow:
    def __init__(self, log: list[tuple[str, int]], delay: float = 0.002) -> None:
        self.log, self.delay, self.seen = log, delay, 0

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        self.log.append(("consumed", self.seen))
        self.seen += 1
        await asyncio.sleep(self.delay)
        yield ReplyText(item.text if isinstance(item, TranscriptText) else "?", "echo")

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        return
        yield

    def close(self) -> None:
        pass


class Boom(Slow):
    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        raise ValueError("bad item")
        yield


async def _run(graph: Graph, items: list[Item]) -> tuple[str, list[Report], dict[tuple[str, str], int]]:
    reports: list[Report] = []
    run = graph.start_turn(session_id="s", turn_id="t", correlation_id="c", reporter=reports.append)
    for item in items:
        await run.feed(item)
    await run.end_input()
    outcome = await run.wait()
    return outcome.status, reports, run.edge_high_water()


def test_slow_consumer_makes_producer_wait() -> None:
    log: list[tuple[str, int]] = []
    graph = Graph(nodes={"p": lambda: Burst(60, log), "c": lambda: Slow(log)},
                  edges=[EdgeSpec("p", "c", 3)], entry="p")
    status, reports, high = asyncio.run(_run(graph, [TranscriptText("go", True)]))
    assert status == "completed"
    assert high[("p", "c")] <= 3
    # At every moment the producer is at most capacity + 2 ahead (queue + one in the
    # consumer's hands + one generated and waiting on put): it was held back, not buffered.
    produced = consumed = 0
    worst = 0
    for kind, _ in log:
        produced += kind == "produced"
        consumed += kind == "consumed"
        worst = max(worst, produced - consumed)
    assert worst <= 3 + 2
    assert len([r for r in reports if isinstance(r, OutputReport) and r.node_id == "c"]) == 60


def test_outputs_are_reported_with_node_ids_and_timing() -> None:
    log: list[tuple[str, int]] = []
    graph = Graph(nodes={"p": lambda: Burst(3, log), "c": lambda: Slow(log)},
                  edges=[EdgeSpec("p", "c", 2)], entry="p")
    _, reports, _ = asyncio.run(_run(graph, [TranscriptText("go", True)]))
    outs = [r for r in reports if isinstance(r, OutputReport)]
    assert sorted((r.node_id, r.index) for r in outs) == [("c", 0), ("c", 1), ("c", 2),
                                                           ("p", 0), ("p", 1), ("p", 2)]
    assert all(r.start_ns <= r.end_ns for r in outs)
    consumer = [r for r in outs if r.node_id == "c"]
    assert all(r.end_ns - r.start_ns >= 2_000_000 for r in consumer)  # includes its 2 ms of work
    assert [r for r in reports if isinstance(r, NodeEnded)] == [
        NodeEnded("p", "done", 3), NodeEnded("c", "done", 3)]


def test_fan_in_waits_for_every_upstream() -> None:
    log: list[tuple[str, int]] = []
    graph = Graph(
        nodes={"a": lambda: Burst(2, log), "b": lambda: Slow(log), "c": lambda: Slow(log, 0.0),
               "d": lambda: Slow(log, 0.0)},
        edges=[EdgeSpec("a", "b", 1), EdgeSpec("a", "c", 1), EdgeSpec("b", "d", 1),
               EdgeSpec("c", "d", 1)],
        entry="a",
    )
    status, reports, _ = asyncio.run(_run(graph, [TranscriptText("go", True)]))
    assert status == "completed"
    assert len([r for r in reports if isinstance(r, OutputReport) and r.node_id == "d"]) == 4
    assert [r.node_id for r in reports if isinstance(r, NodeEnded)][-1] == "d"


def test_node_failure_fails_the_turn_and_cancels_the_rest() -> None:
    log: list[tuple[str, int]] = []
    graph = Graph(nodes={"p": lambda: Burst(50, log), "x": lambda: Boom(log)},
                  edges=[EdgeSpec("p", "x", 1)], entry="p")

    async def scenario() -> tuple[TurnOutcome, list[Report]]:
        reports: list[Report] = []
        run = graph.start_turn(session_id="s", turn_id="t", correlation_id="c",
                               reporter=reports.append)
        await run.feed(TranscriptText("go", True))
        return await run.wait(), reports  # no end_input: failure alone must end the turn

    outcome, reports = asyncio.run(scenario())
    assert outcome.status == "failed"
    assert outcome.failed_node == "x"
    assert "ValueError: bad item" in str(outcome.error)
    ended = {r.node_id: r.status for r in reports if isinstance(r, NodeEnded)}
    assert ended == {"x": "failed", "p": "cancelled"}


def test_node_budget_overrun_is_a_timeout_failure() -> None:
    log: list[tuple[str, int]] = []
    graph = Graph(nodes={"c": lambda: Slow(log, delay=10.0)}, edges=[], entry="c",
                  timeouts_s={"c": 0.05})
    status, reports, _ = asyncio.run(_run(graph, [TranscriptText("x", True)]))
    assert status == "failed"
    ended = [r for r in reports if isinstance(r, NodeEnded)]
    assert ended[0].status == "failed" and "overran its budget" in str(ended[0].error)


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ([EdgeSpec("a", "zz", 1)], "unknown node"),
        ([EdgeSpec("a", "b", 0)], "capacity"),
        ([EdgeSpec("a", "b", 1), EdgeSpec("b", "a", 1)], "no input edge|cycle"),
        ([], "no input edge"),
    ],
)
def test_invalid_graphs_are_rejected(edges: list[EdgeSpec], message: str) -> None:
    log: list[tuple[str, int]] = []
    with pytest.raises(GraphError, match=message):
        Graph(nodes={"a": lambda: Slow(log), "b": lambda: Slow(log)}, edges=edges, entry="a")


def test_offer_never_waits_and_on_done_reports_the_outcome_wait_would_return() -> None:
    async def scenario() -> tuple[list[bool], TurnOutcome, TurnOutcome, list[Report]]:
        log: list[tuple[str, int]] = []
        graph = Graph(
            nodes={"c": lambda: Slow(log, delay=0.0)}, edges=[], entry="c", input_capacity=2
        )
        reports: list[Report] = []
        run = graph.start_turn(session_id="s", turn_id="t", correlation_id="c", reporter=reports.append)
        ended: list[TurnOutcome] = []
        run.on_done(ended.append)
        # Nothing has run yet: the input edge takes two, then refuses without blocking.
        offered = [run.offer(TranscriptText(f"{i}", final=True)) for i in range(3)]
        await run.end_input()  # waits for room, as a caller with a backlog does
        waited = await run.wait()
        await asyncio.sleep(0)  # done-callbacks run on the loop
        return offered, ended[0], waited, reports

    offered, ended, waited, reports = asyncio.run(scenario())
    assert offered == [True, True, False]
    assert ended == waited and ended.status == "completed"
    outputs = [r for r in reports if isinstance(r, OutputReport)]
    assert [r.item.text for r in outputs] == ["0", "1"]  # type: ignore[union-attr]


def test_on_done_fires_once_for_a_cancelled_turn() -> None:
    async def scenario() -> list[TurnOutcome]:
        log: list[tuple[str, int]] = []
        graph = Graph(nodes={"c": lambda: Slow(log, delay=5.0)}, edges=[], entry="c")
        run = graph.start_turn(session_id="s", turn_id="t", correlation_id="c")
        ended: list[TurnOutcome] = []
        run.on_done(ended.append)
        assert run.offer(TranscriptText("x", final=True))
        await asyncio.sleep(0.01)
        run.cancel()
        for _ in range(10):
            await asyncio.sleep(0)
        return ended

    ended = asyncio.run(scenario())
    assert [o.status for o in ended] == ["cancelled"]
