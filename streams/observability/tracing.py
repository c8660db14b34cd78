"""OpenTelemetry traces of sessions, turns and nodes, built from the events the processor
appends, so a trace and the log join on ``correlation.trace_id``.

One trace per session: the session span is the root, each turn a child span, each node
that produced output in the turn a grandchild (from its first output's start to its last
output). The trace id is the one the voice service put in the session's correlation; when
it sent none, the processor makes one per session and stamps it on the turn's events.
Cancel and abort are span events.

Spans are finished records (the SDK's ``ReadableSpan``) made when their scope ends: the
turn's at TURN_CLOSE, the session's at SESSION_CLOSE. Building them through the SDK's live
span API cost ~170 µs per turn on the processor's loop, direct records ~15 µs; an
exporter thread ships them in batches (``OTEL_*`` variables: :func:`tracer_from_env`).
"""

from __future__ import annotations

import os
import queue
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

from streams.abi import events as ev
from streams.observability.errors import ObservabilityError
from streams.observability.observer import Observer

__all__ = ["SessionTracer", "tracer_from_env", "tracing_requested"]

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_SESSIONS = 100_000  # sessions traced at once (the oldest is ended beyond it)
_SCOPE = InstrumentationScope("rspp.runtime")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_BATCH = 512
_Attrs = dict[str, str | int]


def tracing_requested(env: Mapping[str, str] | None = None) -> bool:
    """True when the standard variables ask for traces (an OTLP endpoint or an exporter)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracer_from_env() -> SessionTracer:
    """The tracer ``rspp run`` uses: OTLP (http/protobuf or grpc per
    ``OTEL_EXPORTER_OTLP_PROTOCOL``) or ``console`` per ``OTEL_TRACES_EXPORTER``; service
    name, resource attributes and sampler from the usual variables."""
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    exporter: SpanExporter
    if kind == "console":
        exporter = ConsoleSpanExporter()
    elif kind == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        )
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )

            exporter = GrpcExporter()
        elif protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            raise ObservabilityError(f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported {protocol!r}")
    else:
        raise ObservabilityError(f"OTEL_TRACES_EXPORTER: unsupported exporter {kind!r}")
    # The SDK's provider reads OTEL_TRACES_SAMPLER(_ARG) and OTEL_SERVICE_NAME/RESOURCE_ATTRIBUTES.
    provider = TracerProvider()
    return SessionTracer(exporter, resource=provider.resource, sampler=provider.sampler)


@dataclass(slots=True)
class _NodeWork:
    start_ns: int
    end_ns: int
    outputs: int = 0
    reply: bool = False


@dataclass(slots=True)
class _Turn:
    span_id: int
    start_ns: int
    attributes: _Attrs
    nodes: dict[str, _NodeWork] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    links: tuple[Link, ...] = ()
    trace_id: int = 0


@dataclass(slots=True)
class _Session:
    trace_id: str
    start_ns: int
    tenant: str
    session: str
    span_id: int = 0  # 0: no turn yet (no span until one is traced)
    sampled: bool = True
    events: list[Event] = field(default_factory=list)


class _Exporter(threading.Thread):
    """Ships finished spans in batches, off the processor's loop."""

    def __init__(self, exporter: SpanExporter) -> None:
        super().__init__(name="rspp-trace-export", daemon=True)
        self.exporter = exporter
        self.queue: queue.Queue[list[ReadableSpan] | threading.Event | None] = queue.Queue()

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            for i in range(0, len(item), _BATCH):
                try:
                    self.exporter.export(item[i : i + _BATCH])
                except Exception:  # a receiver that is down must not stop the processor
                    continue

    def flush(self, timeout: float = 10.0) -> None:
        done = threading.Event()
        self.queue.put(done)
        done.wait(timeout)


class SessionTracer(Observer):
    """Spans from appended events; its hooks run on the processor's loop only."""

    enabled = True

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        resource: Resource | None = None,
        sampler: Sampler | None = None,
    ) -> None:
        self.resource = resource or Resource.create({"service.name": "rspp"})
        self.sampler = sampler
        self._rand = random.Random()
        self._sessions: OrderedDict[tuple[str, str], _Session] = OrderedDict()
        self._turns: dict[tuple[str, str, str], _Turn] = {}
        self._done: list[ReadableSpan] = []
        self._thread = _Exporter(exporter)
        self._thread.start()

    # -- hooks ------------------------------------------------------------------------
    def trace_id(self, tenant: str, session: str, given: str | None) -> str | None:
        known = self._sessions.get((tenant, session))
        if known is not None and known.trace_id and given in (None, known.trace_id):
            return known.trace_id
        if given is not None and not _TRACE_ID.match(given):
            return given  # not a W3C trace id: kept in the log, the span gets its own
        trace_id = given or f"{self._rand.getrandbits(128) or 1:032x}"
        if known is None:
            self._remember(_Session(trace_id, time.time_ns(), tenant, session))
        elif not known.span_id:
            known.trace_id = trace_id
        return trace_id

    def logged(self, event: ev.Envelope) -> None:
        p = event.payload
        if isinstance(p, ev.NodeOutput):
            self._node_output(event, p)
        elif isinstance(p, ev.TurnOpen):
            self._turn_open(event)
        elif isinstance(p, ev.TurnClose):
            self._turn_close(event, p)
        elif isinstance(p, ev.Admit):
            self._remember(_Session("", time.time_ns(), event.tenant_id, event.session_id))
        elif isinstance(p, ev.Cancel):
            self._cancel(event, p)
        elif isinstance(p, ev.TurnAbort):
            turn = self._turn(event)
            if turn is not None:
                turn.events.append(Event("abort", {"rspp.abort.reason": p.reason}))
        elif isinstance(p, ev.SessionClose):
            self._session_close((event.tenant_id, event.session_id), p.reason)

    def sample(self, sample: object) -> None:
        """At every commit: hand what finished to the exporter thread."""
        if self._done:
            self._thread.queue.put(self._done)
            self._done = []

    def close(self) -> None:
        """The processor stops: end its open turns and sessions, export, wait for it."""
        now = time.time_ns()
        for key in list(self._turns):
            turn = self._turns.pop(key)
            turn.events.append(Event("processor stopped"))
            self._finish_turn(key, turn, outcome="open", end_ns=now)
        for skey in list(self._sessions):
            self._session_close(skey, "processor stopped")
        self.sample(None)
        self._thread.flush()

    def shutdown(self) -> None:
        self.close()
        self._thread.queue.put(None)
        self._thread.join(10)
        self._thread.exporter.shutdown()

    # -- spans --------------------------------------------------------------------------
    def _remember(self, session: _Session) -> None:
        key = (session.tenant, session.session)
        old = self._sessions.get(key)
        if old is not None and (old.span_id or old.trace_id):
            return  # already traced: an implicit reopen continues the trace
        self._sessions[key] = session
        while len(self._sessions) > _MAX_SESSIONS:
            oldest = next(iter(self._sessions))
            self._session_close(oldest, "evicted")

    def _session(self, event: ev.Envelope) -> _Session:
        key = (event.tenant_id, event.session_id)
        session = self._sessions.get(key)
        if session is None:
            session = _Session("", time.time_ns(), event.tenant_id, event.session_id)
            self._remember(session)
        if not session.span_id:
            given = event.correlation.trace_id or ""
            session.trace_id = session.trace_id or given
            if not _TRACE_ID.match(session.trace_id):
                session.trace_id = f"{self._rand.getrandbits(128) or 1:032x}"
            session.span_id = self._rand.getrandbits(64) or 1
            if self.sampler is not None:
                decision = self.sampler.should_sample(None, int(session.trace_id, 16), "session")
                session.sampled = decision.decision is not Decision.DROP
        return session

    def _turn(self, event: ev.Envelope) -> _Turn | None:
        if event.turn_id is None:
            return None
        return self._turns.get((event.tenant_id, event.session_id, event.turn_id))

    def _turn_open(self, event: ev.Envelope) -> None:
        assert event.turn_id is not None
        session = self._session(event)
        if not session.sampled:
            return
        turn = _Turn(
            span_id=self._rand.getrandbits(64) or 1,
            start_ns=time.time_ns(),
            attributes={
                "rspp.session.id": event.session_id,
                "rspp.turn.id": event.turn_id,
                "rspp.plan_hash": event.plan_hash or "",
                "rspp.bundle.id": event.bundle_id or "",
                "rspp.lease_epoch": event.lease_epoch,
            },
            trace_id=int(session.trace_id, 16),
        )
        given = event.correlation.trace_id
        if given and given != session.trace_id and _TRACE_ID.match(given):
            # The service started a new trace for this utterance: link to the session's.
            turn.trace_id = int(given, 16)
            turn.links = (Link(self._context(int(session.trace_id, 16), session.span_id)),)
        self._turns[(event.tenant_id, event.session_id, event.turn_id)] = turn

    def _node_output(self, event: ev.Envelope, out: ev.NodeOutput) -> None:
        turn = self._turn(event)
        if turn is None or event.node_id is None:
            return
        now = time.time_ns()
        start = now - (out.latency_us or 0) * 1000
        work = turn.nodes.get(event.node_id)
        if work is None:
            work = turn.nodes[event.node_id] = _NodeWork(start_ns=start, end_ns=now)
        elif start < work.start_ns:
            work.start_ns = start
        work.end_ns = now
        work.outputs += 1
        work.reply = work.reply or out.kind == "reply"

    def _cancel(self, event: ev.Envelope, cancel: ev.Cancel) -> None:
        attrs = {"rspp.cancel.scope": cancel.scope.value, "rspp.cancel.reason": cancel.reason or ""}
        turn = self._turn(event)
        if turn is not None:
            turn.events.append(Event("cancel", attrs))
            return
        session = self._sessions.get((event.tenant_id, event.session_id))
        if session is not None:
            session.events.append(Event("cancel", attrs))

    def _turn_close(self, event: ev.Envelope, close: ev.TurnClose) -> None:
        assert event.turn_id is not None
        key = (event.tenant_id, event.session_id, event.turn_id)
        turn = self._turns.pop(key, None)
        if turn is not None:
            self._finish_turn(key, turn, outcome=close.outcome.value.lower(), end_ns=time.time_ns())

    def _finish_turn(
        self, key: tuple[str, str, str], turn: _Turn, *, outcome: str, end_ns: int
    ) -> None:
        session = self._sessions.get(key[:2])
        parent = (
            self._context(turn.trace_id, session.span_id)
            if session is not None and not turn.links
            else None
        )
        context = self._context(turn.trace_id, turn.span_id)
        for node_id, work in turn.nodes.items():
            attributes: _Attrs = {"rspp.node.id": node_id, "rspp.node.outputs": work.outputs}
            if work.reply:  # the model call of the turn (GenAI semantic conventions)
                attributes["gen_ai.operation.name"] = "chat"
            self._span(
                f"node {node_id}",
                turn.trace_id,
                context,
                start=work.start_ns,
                end=work.end_ns,
                attributes=attributes,
            )
        turn.attributes["rspp.turn.outcome"] = outcome
        self._done.append(
            ReadableSpan(
                name="turn",
                context=context,
                parent=parent,
                resource=self.resource,
                attributes=turn.attributes,
                events=turn.events,
                links=turn.links,
                instrumentation_scope=_SCOPE,
                start_time=turn.start_ns,
                end_time=end_ns,
            )
        )

    def _span(
        self,
        name: str,
        trace_id: int,
        parent: SpanContext,
        *,
        start: int,
        end: int,
        attributes: _Attrs,
    ) -> None:
        self._done.append(
            ReadableSpan(
                name=name,
                context=self._context(trace_id, self._rand.getrandbits(64) or 1),
                parent=parent,
                resource=self.resource,
                attributes=attributes,
                instrumentation_scope=_SCOPE,
                start_time=start,
                end_time=end,
            )
        )

    def _session_close(self, key: tuple[str, str], reason: str | None) -> None:
        session = self._sessions.pop(key, None)
        if session is None or not session.span_id or not session.sampled:
            return
        self._done.append(
            ReadableSpan(
                name="session",
                kind=SpanKind.SERVER,
                context=self._context(int(session.trace_id, 16), session.span_id),
                parent=None,
                resource=self.resource,
                attributes={
                    "rspp.tenant.id": session.tenant,
                    "rspp.session.id": session.session,
                    "rspp.session.close_reason": reason or "",
                },
                events=session.events,
                instrumentation_scope=_SCOPE,
                start_time=session.start_ns,
                end_time=time.time_ns(),
            )
        )

    @staticmethod
    def _context(trace_id: int, span_id: int) -> SpanContext:
        return SpanContext(
            trace_id=trace_id, span_id=span_id, is_remote=False, trace_flags=_SAMPLED
        )
