"""Layered defaulting: every effective value is taken from the first layer that sets it.

Precedence, highest first: ``policy:<name>`` (later overlays win) > ``spec``
(or ``module default`` for nodes a module declares) > ``profile`` >
``simple/v1 default``. Node timeouts have no simple/v1 default on purpose: a
node without a budget is an error, not a silent guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeVar

from pipelines.models.resolved import Sourced
from pipelines.models.spec import DegradeAction

__all__ = ["SIMPLE_V1", "SIMPLE_V1_SOURCE", "SimpleV1Defaults", "first"]

SIMPLE_V1_SOURCE: Final = "simple/v1 default"
V = TypeVar("V")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimpleV1Defaults:
    mode: str = "low_latency"
    control: str = "strict"
    data_weight: int = 8
    telemetry_weight: int = 1
    control_queue_max_items: int = 64
    data_queue_max_items: int = 256
    telemetry_queue_max_items: int = 64
    retries: int = 0
    degrade: DegradeAction = "fail_turn"
    edge_lane: str = "data"
    max_items: int = 32
    high_watermark: int = 24
    low_watermark: int = 8
    overflow: str = "drop_oldest"
    max_block_ms: int = 0
    shed_mode: str = "drop_oldest"
    shed_order: tuple[str, ...] = ("telemetry", "data")
    max_data_block_ms: int = 20
    max_concurrent_turns_per_session: int = 1
    max_concurrent_turns_per_tenant: int = 64
    on_limit: str = "reject"
    drain_grace_ms: int = 5000
    drain_reject_new_sessions: bool = True
    turn_boundary: str = "final_transcript"
    turn_timeout_ms: int = 15000


SIMPLE_V1: Final = SimpleV1Defaults()


def first(layers: Iterable[tuple[str, V | None]], default: V | None = None) -> Sourced[V] | None:
    """The first layer with a value, as ``Sourced``; ``default`` is the simple/v1 fallback."""
    for source, value in layers:
        if value is not None:
            return Sourced[V](value=value, source=source)
    if default is not None:
        return Sourced[V](value=default, source=SIMPLE_V1_SOURCE)
    return None
