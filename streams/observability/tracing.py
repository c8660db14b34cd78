"""OpenTelemetry traces of sessions, turns and nodes, built from the events the processor
appends, so a trace and the log join on ``correlation.trace_id``.

One trace per session: the session span is the root, each turn a child span, each node
that produced output in the turn a grandchild (from its first output's start to its last
output). The trace id is the one the voice service put in the session's correlation; when
it sent none, the processor makes one per session and stamps it on the turn's events.
Cancel and abort are span events. Enabled by the standard ``OTEL_*`` environment
variables (:func:`tracer_provider_from_env`).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import Link, Span, SpanKind

from streams.abi import events as ev
from streams.observability.errors import ObservabilityError
from streams.observability.observer import Observer

__all__ = ["SessionTracer", "tracer_provider", "tracer_provider_from_env", "tracing_requested"]

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_SESSIONS = 100_000  # session spans kept open at once (oldest ended beyond it)
_SCOPE = "rspp.runtime"


class _ChosenIds(IdGenerator):
    """Random ids, except that the next root span may take a trace id chosen by the caller
    (the session's, from the log), so the trace is rooted at the session span itself."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self._next = threading.local()

    def choose(self, trace_id: int) -> None:
        self._next.trace_id = trace_id

    def generate_span_id(self) -> int:
        return self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        chosen: int | None = getattr(self._next, "trace_id", None)
        if chosen is not None:
            self._next.trace_id = None
            return chosen
        return self._random.generate_trace_id()


def tracer_provider(
    exporter: SpanExporter | None = None, *, batch: bool = True, resource: Resource | None = None
) -> TracerProvider:
    """A provider whose session spans can carry the log's trace id (sampler from OTEL_*)."""
    provider = TracerProvider(
        id_generator=_ChosenIds(), resource=resource or Resource.create({"service.name": "rspp"})
    )
    if exporter is not None:
        if batch:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        else:
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor

            provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def tracing_requested(env: dict[str, str] | None = None) -> bool:
    """True when the standard variables ask for traces (an OTLP endpoint or an exporter)."""
    env = dict(os.environ) if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracer_provider_from_env() -> TracerProvider:
    """The provider ``rspp run`` uses: OTLP (http/protobuf or grpc per
    ``OTEL_EXPORTER_OTLP_PROTOCOL``) or ``console`` per ``OTEL_TRACES_EXPORTER``; service name,
    resource attributes and sampler from the usual variables."""
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
    service = os.environ.get("OTEL_SERVICE_NAME", "rspp")
    return tracer_provider(exporter, resource=Resource.create({"service.name": service}))


@dataclass(slots=True)
class _NodeWork:
    start_ns: int
    end_ns: int
    outputs: int = 0
    kinds: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Turn:
    span: Span
    nodes: dict[str, _NodeWork] = field(default_factory=dict)


@dataclass(slots=True)
class _Session:
    trace_id: str
    admitted_ns: int
    span: Span | None = None


class SessionTracer(Observer):
    """Spans from appended events; call from the processor's loop only."""

    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer(_SCOPE)
        ids = provider.id_generator
        self._ids = ids if isinstance(ids, _ChosenIds) else None
        self._sessions: OrderedDict[tuple[str, str], _Session] = OrderedDict()
        self._turns: dict[tuple[str, str, str], _Turn] = {}

    # -- hooks ------------------------------------------------------------------------
    def trace_id(self, tenant: str, session: str, given: str | None) -> str | None:
        known = self._sessions.get((tenant, session))
        if known is not None and known.trace_id and given in (None, known.trace_id):
            return known.trace_id
        if given is not None and not _TRACE_ID.match(given):
            return given  # not a W3C trace id: kept in the log, the span gets its own
        trace_id = given or f"{RandomIdGenerator().generate_trace_id():032x}"
        if known is not None and known.span is None:
            known.trace_id = trace_id
        elif known is None:
            self._remember(
                (tenant, session), _Session(trace_id=trace_id, admitted_ns=time.time_ns())
            )
        return trace_id

    def logged(self, event: ev.Envelope) -> None:
        p = event.payload
        if isinstance(p, ev.Admit):
            self._remember(
                (event.tenant_id, event.session_id),
                _Session(trace_id="", admitted_ns=time.time_ns()),
            )
        elif isinstance(p, ev.TurnOpen):
            self._turn_open(event)
        elif isinstance(p, ev.NodeOutput):
            self._node_output(event, p)
        elif isinstance(p, ev.Cancel):
            self._cancel(event, p)
        elif isinstance(p, ev.TurnAbort):
            turn = self._turn(event)
            if turn is not None:
                turn.span.add_event("abort", {"rspp.abort.reason": p.reason})
        elif isinstance(p, ev.TurnClose):
            self._turn_close(event, p)
        elif isinstance(p, ev.SessionClose):
            self._session_close((event.tenant_id, event.session_id), p.reason)

    def close(self) -> None:
        for key in list(self._turns):
            turn = self._turns.pop(key)
            turn.span.add_event("processor stopped")
            turn.span.end()
        for skey in list(self._sessions):
            self._session_close(skey, "processor stopped")

    # -- spans --------------------------------------------------------------------------
    def _remember(self, key: tuple[str, str], session: _Session) -> None:
        old = self._sessions.get(key)
        if old is not None and old.span is not None:
            return  # already traced: an implicit reopen continues the trace
        self._sessions[key] = session
        while len(self._sessions) > _MAX_SESSIONS:
            _, dropped = self._sessions.popitem(last=False)
            if dropped.span is not None:
                dropped.span.end()

    def _session_span(self, event: ev.Envelope) -> _Session:
        key = (event.tenant_id, event.session_id)
        session = self._sessions.get(key)
        trace_id = event.correlation.trace_id
        if session is None:
            session = _Session(trace_id="", admitted_ns=time.time_ns())
            self._remember(key, session)
        if session.span is None:
            if not session.trace_id:
                session.trace_id = trace_id or ""
            if self._ids is not None and _TRACE_ID.match(session.trace_id):
                self._ids.choose(int(session.trace_id, 16))
            session.span = self._tracer.start_span(
                "session",
                kind=SpanKind.SERVER,
                start_time=session.admitted_ns,
                context=trace.set_span_in_context(trace.INVALID_SPAN),
                attributes={
                    "rspp.tenant.id": event.tenant_id,
                    "rspp.session.id": event.session_id,
                    "rspp.trace_id": trace_id or "",
                },
            )
        return session

    def _turn(self, event: ev.Envelope) -> _Turn | None:
        if event.turn_id is None:
            return None
        return self._turns.get((event.tenant_id, event.session_id, event.turn_id))

    def _turn_open(self, event: ev.Envelope) -> None:
        assert event.turn_id is not None
        session = self._session_span(event)
        assert session.span is not None
        attributes: dict[str, str | int] = {
            "rspp.session.id": event.session_id,
            "rspp.turn.id": event.turn_id,
            "rspp.plan_hash": event.plan_hash or "",
            "rspp.bundle.id": event.bundle_id or "",
            "rspp.lease_epoch": event.lease_epoch,
        }
        if event.correlation.trace_id in (None, session.trace_id):
            span = self._tracer.start_span(
                "turn", context=trace.set_span_in_context(session.span), attributes=attributes
            )
        else:  # the service started a new trace for this utterance: link to the session's
            span = self._tracer.start_span(
                "turn",
                context=trace.set_span_in_context(trace.INVALID_SPAN),
                links=[Link(session.span.get_span_context())],
                attributes=attributes,
            )
        self._turns[(event.tenant_id, event.session_id, event.turn_id)] = _Turn(span=span)

    def _node_output(self, event: ev.Envelope, out: ev.NodeOutput) -> None:
        turn = self._turn(event)
        if turn is None or event.node_id is None:
            return
        now = time.time_ns()
        start = now - (out.latency_us or 0) * 1000
        work = turn.nodes.get(event.node_id)
        if work is None:
            work = turn.nodes[event.node_id] = _NodeWork(start_ns=start, end_ns=now)
        work.start_ns = min(work.start_ns, start)
        work.end_ns = now
        work.outputs += 1
        work.kinds.add(out.kind)

    def _cancel(self, event: ev.Envelope, cancel: ev.Cancel) -> None:
        attrs = {
            "rspp.cancel.scope": cancel.scope.value if cancel.scope else "",
            "rspp.cancel.reason": cancel.reason or "",
        }
        turn = self._turn(event)
        if turn is not None:
            turn.span.add_event("cancel", attrs)
            return
        session = self._sessions.get((event.tenant_id, event.session_id))
        if session is not None and session.span is not None:
            session.span.add_event("cancel", attrs)

    def _turn_close(self, event: ev.Envelope, close: ev.TurnClose) -> None:
        assert event.turn_id is not None
        turn = self._turns.pop((event.tenant_id, event.session_id, event.turn_id), None)
        if turn is None:
            return
        context = trace.set_span_in_context(turn.span)
        for node_id, work in turn.nodes.items():
            attributes: dict[str, str | int] = {
                "rspp.node.id": node_id,
                "rspp.node.outputs": work.outputs,
            }
            if "reply" in work.kinds:  # the model call of the turn (GenAI conventions)
                attributes["gen_ai.operation.name"] = "chat"
            span = self._tracer.start_span(
                f"node {node_id}", context=context, start_time=work.start_ns, attributes=attributes
            )
            span.end(end_time=work.end_ns)
        turn.span.set_attribute("rspp.turn.outcome", close.outcome.value.lower())
        turn.span.end()

    def _session_close(self, key: tuple[str, str], reason: str | None) -> None:
        session = self._sessions.pop(key, None)
        if session is not None and session.span is not None:
            session.span.set_attribute("rspp.session.close_reason", reason or "")
            session.span.end()
