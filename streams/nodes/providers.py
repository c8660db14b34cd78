"""Providers behind one interface, tried with timeouts, retries and a fallback order.

A :class:`ProviderChain` is deterministic: it has no jitter and no clock-based
choices, so the same inputs and the same sequence of provider failures always
produce the same result and the same :class:`FallbackDecision` sequence —
which is what replay needs to re-derive a recorded turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from pipelines.models.spec import DegradeAction
from streams.nodes.errors import NodeConfigError, ProviderError, ProviderExhaustedError
from streams.nodes.node import FallbackDecision, NodeContext

__all__ = ["DEGRADE", "DegradeAction", "Provider", "ProviderChain", "ProviderPolicy"]

Req = TypeVar("Req")
Res = TypeVar("Res")
Req_contra = TypeVar("Req_contra", contravariant=True)
Res_co = TypeVar("Res_co", covariant=True)

DEGRADE = "degrade"  # to_provider name reported when the chain falls back to its degrade


@dataclass(frozen=True, slots=True)
class ProviderPolicy:
    """A node's resolved budget and fallback intent (spec ``budget`` + ``fallback``).

    ``providers`` is the fallback order by provider name; empty means the
    node's own default provider only.
    """

    timeout_s: float = 5.0
    retries: int = 0
    providers: tuple[str, ...] = ()
    degrade: DegradeAction | None = None
    reply: str | None = None


class Provider(Protocol[Req_contra, Res_co]):
    """One way to serve a request (an engine, a voice, a remote API)."""

    @property
    def name(self) -> str: ...

    def __call__(self, request: Req_contra, ctx: NodeContext) -> Awaitable[Res_co]: ...


class ProviderChain(Generic[Req, Res]):
    """Try each provider ``retries + 1`` times, in order, then degrade or fail.

    Every move away from a failed attempt is reported through ``ctx.report``
    *before* the next attempt starts, so the log order matches execution order.
    Cancellation is never treated as a failure: it propagates at once.
    """

    def __init__(
        self,
        *,
        providers: Sequence[Provider[Req, Res]],
        timeout_s: float,
        retries: int = 0,
        degrade: Callable[[Req], Res] | None = None,
    ) -> None:
        if not providers:
            raise NodeConfigError("a provider chain needs at least one provider")
        if timeout_s <= 0 or retries < 0:
            raise NodeConfigError(
                f"timeout_s must be > 0 and retries >= 0 (got {timeout_s}, {retries})"
            )
        self.providers = tuple(providers)
        self.timeout_s = timeout_s
        self.retries = retries
        self.degrade = degrade

    def _plan(self) -> list[Provider[Req, Res]]:
        return [p for p in self.providers for _ in range(self.retries + 1)]

    async def call(self, request: Req, ctx: NodeContext) -> Res:
        plan = self._plan()
        last_reason = ""
        for attempt, provider in enumerate(plan, start=1):
            timeout = self.timeout_s
            remaining = ctx.remaining_s()
            if remaining is not None:
                timeout = min(timeout, remaining)
            try:
                async with asyncio.timeout(timeout):
                    return await provider(request, ctx)
            except TimeoutError:
                last_reason = f"timeout after {timeout:.3f}s"
            except (ProviderError, OSError, ValueError) as exc:
                # Only provider-shaped failures fall back; programming errors surface as-is.
                last_reason = f"{type(exc).__name__}: {exc}"
            nxt = plan[attempt].name if attempt < len(plan) else None
            if nxt is None and self.degrade is not None:
                nxt = DEGRADE
            ctx.report(FallbackDecision(ctx.node_id, provider.name, nxt, last_reason, attempt))
        if self.degrade is not None:
            return self.degrade(request)
        raise ProviderExhaustedError(
            f"node {ctx.node_id!r}: all {len(plan)} provider attempts failed; last: {last_reason}"
        )
