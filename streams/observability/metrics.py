"""Prometheus metrics of one processor, derived from the events it appends.

Each :class:`ProcessorMetrics` has its own registry (never the global one), so several
processors in one process (tests, benchmarks) keep separate counts. Labels stay
low-cardinality: lane, stage, reason tags (:mod:`streams.observability.labels`), partition
numbers; never session, turn or tenant ids.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.abi import events as ev
from streams.observability.errors import ObservabilityError
from streams.observability.labels import LabelSet, reason_tag
from streams.observability.lag import LagReader
from streams.observability.observer import Observer, RuntimeSample

__all__ = ["LATENCY_BUCKETS", "MetricsServer", "ProcessorMetrics"]

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# Turns whose timings are tracked at once; a turn that never closes here (its partition
# moved away) must not keep memory forever.
_MAX_TRACKED_TURNS = 50_000

_TurnKey = tuple[str, str, str]


@dataclass(slots=True)
class _TurnTimes:
    speech_end_ns: int | None = None
    audio_seen: bool = False


class ProcessorMetrics(Observer):
    """The metric families, updated from the processor's hook calls."""

    enabled = True

    def __init__(
        self, *, registry: CollectorRegistry | None = None, lag: LagReader | None = None
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.turns_opened = Counter("rspp_turns_opened", "Turns opened (TURN_OPEN).", registry=r)
        self.turns_committed = Counter(
            "rspp_turns_committed", "Turns committed (TURN_COMMIT).", registry=r
        )
        self.turns_aborted = Counter(
            "rspp_turns_aborted", "Turns aborted (TURN_ABORT) by reason.", ["reason"], registry=r
        )
        self.sessions_admitted = Counter("rspp_sessions_admitted", "Sessions admitted.", registry=r)
        self.sessions_rejected = Counter(
            "rspp_sessions_rejected", "Sessions refused at admission.", registry=r
        )
        self.stage_seconds = Histogram(
            "rspp_stage_latency_seconds",
            "Per-stage latency: stt_final (input to final transcript), respond (to the reply), "
            "tts_first_chunk (to a turn's first audio chunk).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_audio = Histogram(
            "rspp_turn_first_audio_seconds",
            "End of speech (END_OF_UTTERANCE or final transcript recorded) to the turn's first "
            "accepted audio (PLAYBACK_STARTED).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.control_wait = Histogram(
            "rspp_control_wait_seconds",
            "Control record produced (its Kafka timestamp) to applied by the processor.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "rspp_transaction_commit_seconds",
            "Transaction commit (with offsets) duration.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.transactions = Counter(
            "rspp_transactions", "Transactions ended, by outcome.", ["outcome"], registry=r
        )
        self.shed = Counter(
            "rspp_shed_records", "Records shed (SHED events' counts).", ["lane", "rule"], registry=r
        )
        self.dlq = Counter(
            "rspp_dlq_records", "Records dead-lettered, by reason tag.", ["reason"], registry=r
        )
        self.lease_epoch = Gauge(
            "rspp_lease_epoch", "Lease epoch granted per partition.", ["partition"], registry=r
        )
        self.lease_grants = Counter("rspp_lease_grants", "Lease epochs granted.", registry=r)
        self.lane_depth = Gauge(
            "rspp_lane_queue_depth", "Records queued per lane.", ["lane"], registry=r
        )
        self.lane_paused = Gauge(
            "rspp_lane_paused_partitions",
            "Lane partitions paused because their queue is full.",
            registry=r,
        )
        self.sessions = Gauge(
            "rspp_sessions",
            "Sessions in this processor's state (open, and closed ones kept for a reopen).",
            registry=r,
        )
        self.open_turns = Gauge("rspp_turns_open", "Turns in flight.", registry=r)
        self._abort_reasons = LabelSet()
        self._dlq_reasons = LabelSet()
        self._shed_rules = LabelSet()
        self._turns: OrderedDict[_TurnKey, _TurnTimes] = OrderedDict()
        self._handlers: dict[type, Callable[[ev.Envelope], None]] = {
            ev.TurnOpen: self._turn_open,
            ev.TurnCommit: lambda e: self.turns_committed.inc(),
            ev.TurnAbort: self._turn_abort,
            ev.TurnClose: self._turn_close,
            ev.EndOfUtterance: self._speech_end,
            ev.Transcript: self._transcript,
            ev.NodeOutput: self._node_output,
            ev.PlaybackStarted: self._playback,
            ev.Shed: self._shed,
            ev.DeadLetter: self._dead_letter,
            ev.LeaseGranted: self._lease,
            ev.Admit: lambda e: self.sessions_admitted.inc(),
            ev.Reject: lambda e: self.sessions_rejected.inc(),
        }
        self._restarts: Callable[[], int] = lambda: 0  # no isolated extensions: none
        self.registry.register(_RestartCollector(self._restart_count))
        if lag is not None:
            self.registry.register(_LagCollector(lag))

    # -- hooks ------------------------------------------------------------------------
    def logged(self, event: ev.Envelope) -> None:
        handler = self._handlers.get(type(event.payload))
        if handler is not None:
            handler(event)

    def control_dispatched(self, timestamp_ms: int) -> None:
        if timestamp_ms > 0:
            self.control_wait.observe(max(0.0, time.time() - timestamp_ms / 1000.0))

    def transaction(self, *, committed: bool, seconds: float) -> None:
        self.transactions.labels("committed" if committed else "aborted").inc()
        if committed:
            self.commit_seconds.observe(seconds)

    def sample(self, sample: RuntimeSample) -> None:
        self.sessions.set(sample.sessions)
        self.open_turns.set(sample.open_turns)
        for lane, depth in sample.lane_depth.items():
            self.lane_depth.labels(lane).set(depth)
        self.lane_paused.set(sample.paused_partitions)

    def _restart_count(self) -> int:
        return self._restarts()  # the source is set later, by track_extension_restarts

    def track_extension_restarts(self, restarts: Callable[[], int]) -> None:
        """Export ``restarts()`` (read at scrape time) as ``rspp_extension_restarts_total``."""
        self._restarts = restarts

    # -- events -----------------------------------------------------------------------
    def _key(self, event: ev.Envelope) -> _TurnKey | None:
        if event.turn_id is None:
            return None
        return (event.tenant_id, event.session_id, event.turn_id)

    def _times(self, event: ev.Envelope) -> _TurnTimes | None:
        key = self._key(event)
        return None if key is None else self._turns.get(key)

    def _turn_open(self, event: ev.Envelope) -> None:
        self.turns_opened.inc()
        key = self._key(event)
        if key is not None:
            self._turns[key] = _TurnTimes()
            if len(self._turns) > _MAX_TRACKED_TURNS:
                self._turns.popitem(last=False)

    def _turn_abort(self, event: ev.Envelope) -> None:
        assert isinstance(event.payload, ev.TurnAbort)
        tag = reason_tag(event.payload.reason, drop=(event.session_id, event.tenant_id))
        self.turns_aborted.labels(self._abort_reasons(tag)).inc()

    def _turn_close(self, event: ev.Envelope) -> None:
        key = self._key(event)
        if key is not None:
            self._turns.pop(key, None)

    def _speech_end(self, event: ev.Envelope) -> None:
        times = self._times(event)
        if times is not None and times.speech_end_ns is None:
            times.speech_end_ns = time.monotonic_ns()

    def _transcript(self, event: ev.Envelope) -> None:
        assert isinstance(event.payload, ev.Transcript)
        if event.payload.kind is ev.TranscriptKind.FINAL:
            self._speech_end(event)

    def _node_output(self, event: ev.Envelope) -> None:
        out = event.payload
        assert isinstance(out, ev.NodeOutput)
        if out.latency_us is None:
            return
        seconds = out.latency_us / 1e6
        if out.kind == "transcript" and out.final:
            self.stage_seconds.labels("stt_final").observe(seconds)
        elif out.kind == "reply":
            self.stage_seconds.labels("respond").observe(seconds)
        elif out.kind == "audio":
            times = self._times(event)
            if times is not None and not times.audio_seen:
                times.audio_seen = True
                self.stage_seconds.labels("tts_first_chunk").observe(seconds)

    def _playback(self, event: ev.Envelope) -> None:
        times = self._times(event)
        if times is not None and times.speech_end_ns is not None:
            self.first_audio.observe((time.monotonic_ns() - times.speech_end_ns) / 1e9)

    def _shed(self, event: ev.Envelope) -> None:
        shed = event.payload
        assert isinstance(shed, ev.Shed)
        self.shed.labels(shed.lane.value, self._shed_rules(reason_tag(shed.rule, words=4))).inc(
            shed.shed_count
        )

    def _dead_letter(self, event: ev.Envelope) -> None:
        assert isinstance(event.payload, ev.DeadLetter)
        tag = reason_tag(event.payload.reason, drop=(event.session_id, event.tenant_id))
        self.dlq.labels(self._dlq_reasons(tag)).inc()

    def _lease(self, event: ev.Envelope) -> None:
        lease = event.payload
        assert isinstance(lease, ev.LeaseGranted)
        self.lease_grants.inc()
        self.lease_epoch.labels(str(lease.partition)).set(lease.epoch)


class _RestartCollector(Collector):
    def __init__(self, restarts: Callable[[], int]) -> None:
        self.restarts = restarts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "rspp_extension_restarts", "Extension worker processes restarted."
        )
        family.add_metric([], self.restarts())
        yield family


class _LagCollector(Collector):
    """Reads the group's lag at scrape time (on the scraping thread, not the processor's)."""

    def __init__(self, reader: LagReader) -> None:
        self.reader = reader

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily("rspp_consumer_lag_records", "", labels=["topic", "partition"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "rspp_consumer_lag_records",
            "Records a read_committed member can still read: last stable offset minus the "
            "group's committed offset (transaction markers not counted).",
            labels=["topic", "partition"],
        )
        lso = GaugeMetricFamily(
            "rspp_consumer_stable_offset",
            "Last stable offset (read_committed high mark).",
            labels=["topic", "partition"],
        )
        up = GaugeMetricFamily("rspp_consumer_lag_up", "1 when the lag could be read.")
        try:
            rows = self.reader.read()
        except ObservabilityError:
            rows = None
        for row in rows or ():
            labels = [row.topic, str(row.partition)]
            lag.add_metric(labels, row.lag)
            lso.add_metric(labels, row.stable_offset)
        up.add_metric([], 0 if rows is None else 1)
        yield from (lag, lso, up)


class MetricsServer:
    """``/metrics`` of one registry over HTTP on ``host:port`` (port 0: any free port)."""

    def __init__(self, registry: CollectorRegistry, *, port: int, host: str = "0.0.0.0") -> None:
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ObservabilityError(
                f"--metrics-port {port}: cannot listen on {host}: {exc}"
            ) from exc
        self.host = host
        self.port: int = self._server.server_port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
