"""What ``rspp run`` starts for operations: the metrics endpoint and the tracer."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from streams.observability.errors import ObservabilityError
from streams.observability.lag import LagReader
from streams.observability.metrics import MetricsServer, ProcessorMetrics
from streams.observability.observer import NO_OBSERVER, Fanout, Observer
from streams.observability.tracing import SessionTracer, tracer_from_env, tracing_requested
from streams.topics import Lane, TopicLayout

__all__ = ["Operations"]


class Operations:
    """Metrics (when a port is given) and traces (when ``OTEL_*`` asks) of one ``rspp run``."""

    def __init__(
        self,
        *,
        bootstrap: str,
        prefix: str,
        group: str,
        metrics_port: int | None,
        metrics_host: str = "0.0.0.0",
        extension_restarts: Callable[[], int] | None = None,
    ) -> None:
        self.metrics: ProcessorMetrics | None = None
        self.server: MetricsServer | None = None
        self.tracer: SessionTracer | None = None
        self._lag: LagReader | None = None
        observers: list[Observer] = []
        try:
            if metrics_port is not None:
                layout = TopicLayout(prefix=prefix, partitions=1)
                self._lag = LagReader(
                    bootstrap=bootstrap,
                    group=group,
                    topics=[layout.lane_topic(lane) for lane in Lane],
                )
                self.metrics = ProcessorMetrics(lag=self._lag)
                if extension_restarts is not None:
                    self.metrics.track_extension_restarts(extension_restarts)
                self.server = MetricsServer(
                    self.metrics.registry, port=metrics_port, host=metrics_host
                )
                observers.append(self.metrics)
            if tracing_requested():
                self.tracer = tracer_from_env()
                observers.append(self.tracer)
        except ObservabilityError:
            self.close()
            raise
        self.observer: Observer = Fanout(observers) if observers else NO_OBSERVER

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self._lag is not None:
            with contextlib.suppress(Exception):
                self._lag.close()
        if self.tracer is not None:
            self.tracer.shutdown()  # exports what is left
