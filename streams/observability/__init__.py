"""Operations: Prometheus metrics, OpenTelemetry traces, read_committed consumer lag and the
live ``rspp top`` view of a deployment (docs/architecture.md, "Operations").

The processor calls one :class:`Observer` (``ProcessorConfig.observer``); the default does
nothing. :class:`ProcessorMetrics` and :class:`SessionTracer` are the two real ones, combined
with :class:`Fanout`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from streams.observability.errors import ObservabilityError
from streams.observability.observer import NO_OBSERVER, Fanout, Observer, RuntimeSample

if TYPE_CHECKING:
    from streams.observability.lag import LagReader, PartitionLag
    from streams.observability.metrics import MetricsServer, ProcessorMetrics
    from streams.observability.tracing import SessionTracer, tracer_from_env, tracing_requested

# prometheus-client and the OpenTelemetry SDK load only when metrics or traces are used:
# the processor imports this package for its no-op default.
_LAZY = {
    "LagReader": "lag",
    "PartitionLag": "lag",
    "MetricsServer": "metrics",
    "ProcessorMetrics": "metrics",
    "SessionTracer": "tracing",
    "tracer_from_env": "tracing",
    "tracing_requested": "tracing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "NO_OBSERVER",
    "Fanout",
    "LagReader",
    "MetricsServer",
    "ObservabilityError",
    "Observer",
    "PartitionLag",
    "ProcessorMetrics",
    "RuntimeSample",
    "SessionTracer",
    "tracer_from_env",
    "tracing_requested",
]
