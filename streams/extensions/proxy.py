"""The in-processor side of an isolated node: a :class:`~streams.nodes.Node` that forwards.

:class:`IsolatedNode` is created per turn like any node; its first call binds
it to one worker of the extension's pool, and every ``process``/``flush`` is
one request/answer round trip bounded by the node's budget. Cancelling the
awaiting task (turn cancel, barge-in, the graph's own budget) interrupts or
kills the worker's call, so a cancelled turn never leaves work running.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import replace
from typing import Any

import orjson

from streams.extensions.errors import ExtensionRefusedError, WorkerProtocolError
from streams.extensions.frames import FrameError, decode_item, encode_item
from streams.extensions.pool import Worker, WorkerPool, WorkerSpec
from streams.nodes.items import Item
from streams.nodes.node import NodeContext, NodeFactory
from streams.nodes.providers import ProviderPolicy

__all__ = ["IsolatedKind", "IsolatedNode", "refused_builder"]

_INSTANCES = itertools.count(1)
_DEADLINE_SLACK_S = 0.05


def _ctx(ctx: NodeContext) -> dict[str, Any]:
    return {
        "session_id": ctx.session_id,
        "turn_id": ctx.turn_id,
        "node_id": ctx.node_id,
        "correlation_id": ctx.correlation_id,
        "deadline_ns": ctx.deadline_ns,
    }


class IsolatedNode:
    """A node whose code runs in a worker process of ``pool``."""

    def __init__(self, pool: WorkerPool, *, timeout_s: float, sticky: bool = True) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._sticky = sticky  # stateful nodes keep one worker for the turn
        self._inst = next(_INSTANCES)
        self._worker: Worker | None = None
        self._generation = 0

    async def _call(self, message: dict[str, Any], ctx: NodeContext) -> list[Item]:
        if self._worker is not None and not self._sticky:
            self._pool.unbind(self._worker)
            self._worker = None
        if self._worker is None:
            self._worker = await self._pool.acquire()
        # A little under the graph's budget for the same call, so the isolated
        # path reports its own, more specific timeout (and kills the worker).
        timeout = self._timeout_s - min(_DEADLINE_SLACK_S, self._timeout_s / 10)
        remaining = ctx.remaining_s()
        if remaining is not None:
            timeout = min(timeout, remaining)
        self._generation = self._worker.generation
        reply = await self._worker.call(
            {**message, "inst": self._inst, "keep": self._sticky, "ctx": _ctx(ctx)}, timeout)
        try:
            return [decode_item(raw) for raw in reply.get("out") or ()]
        except FrameError as exc:
            self._worker.respawn()
            raise WorkerProtocolError(
                f"{self._pool.spec.name}: worker returned an invalid item ({exc}); worker replaced"
            ) from None

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        for out in await self._call({"op": "process", "item": encode_item(item)}, ctx):
            yield out

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        for out in await self._call({"op": "flush"}, ctx):
            yield out

    def close(self) -> None:
        if self._worker is not None:
            if self._sticky:  # a stateless call's instance was dropped after the call
                self._worker.send_close(self._inst, self._generation)
            self._pool.unbind(self._worker)
            self._worker = None


class IsolatedKind:
    """The registry builder for one external node type: a worker pool per distinct config.

    The node's budget is the smaller of the manifest's ``timeout_ms`` and the
    resolved node's provider timeout (a spec or policy may tighten it).
    """

    def __init__(self, spec: WorkerSpec, *, pool_size: int, sticky: bool = True) -> None:
        self.spec = spec
        self.pool_size = pool_size
        self.sticky = sticky
        self.pools: dict[bytes, WorkerPool] = {}

    def pool(self, config: Mapping[str, object]) -> WorkerPool:
        key = orjson.dumps(dict(config), option=orjson.OPT_SORT_KEYS)
        pool = self.pools.get(key)
        if pool is None:
            pool = WorkerPool(replace(self.spec, config=dict(config)), size=self.pool_size)
            self.pools[key] = pool
        return pool

    def __call__(self, node_id: str, config: Mapping[str, object], policy: ProviderPolicy) -> NodeFactory:
        del node_id
        pool = self.pool(config)
        timeout = min(self.spec.timeout_s, policy.timeout_s) if policy.timeout_s else self.spec.timeout_s
        pool.prestart()  # workers import while the processor warms up
        return lambda: IsolatedNode(pool, timeout_s=timeout, sticky=self.sticky)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()


class _RefusedNode:
    def __init__(self, reason: str) -> None:
        self._reason = reason

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        del item, ctx
        raise ExtensionRefusedError(self._reason)
        yield  # pragma: no cover - makes this an async generator

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        del ctx
        raise ExtensionRefusedError(self._reason)
        yield  # pragma: no cover

    def close(self) -> None:
        pass


def refused_builder(reason: str) -> Callable[[str, Mapping[str, object], ProviderPolicy], NodeFactory]:
    """A builder for an extension that failed verification: graphs still build (other
    sessions and bundles keep running), and every turn that reaches the node fails
    with ``reason`` as a NODE_ERROR. Nothing of the refused package is imported."""

    def build(node_id: str, config: Mapping[str, object], policy: ProviderPolicy) -> NodeFactory:
        del node_id, config, policy
        return lambda: _RefusedNode(reason)

    return build
