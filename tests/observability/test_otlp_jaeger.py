"""Traces exported over OTLP/HTTP to a real receiver: Jaeger all-in-one.

The binary comes from ``RSPP_JAEGER``, else ``.ci/jaeger.sh`` (built once from the Go
module proxy into ``$RSPP_HOME``). Jaeger listens on free loopback ports; readiness is its
admin health endpoint. The trace is read back through Jaeger's query API: the same trace
id the log carries, the session -> turn -> node nesting, the abort as a span event.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.abi import events as ev
from streams.observability import tracer_from_env, tracing_requested
from tests.runtime.procs import REPO, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError:
        return 0, b""


def _jaeger_binary() -> str:
    explicit = os.environ.get("RSPP_JAEGER")
    if explicit:
        return explicit
    built = subprocess.run(
        ["bash", str(REPO / ".ci" / "jaeger.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if built.returncode != 0:
        pytest.fail(f".ci/jaeger.sh could not provide jaeger: {built.stderr.strip()[-2000:]}")
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(OTLP/HTTP traces URL, query API base) of a running Jaeger."""
    otlp, query, admin = _free_port(), _free_port(), _free_port()
    args = [
        _jaeger_binary(),
        f"--collector.otlp.http.host-port=127.0.0.1:{otlp}",
        f"--collector.otlp.grpc.host-port=127.0.0.1:{_free_port()}",
        f"--collector.grpc-server.host-port=127.0.0.1:{_free_port()}",
        f"--collector.http-server.host-port=127.0.0.1:{_free_port()}",
        f"--query.http-server.host-port=127.0.0.1:{query}",
        f"--query.grpc-server.host-port=127.0.0.1:{_free_port()}",
        f"--admin.http.host-port=127.0.0.1:{admin}",
    ]
    log = tmp_path / "jaeger.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SPAN_STORAGE_TYPE": "memory"},
        )
    try:
        wait_for(
            lambda: _get(f"http://127.0.0.1:{admin}/")[0] == 200 or proc.poll() is not None,
            60,
            "jaeger's health endpoint",
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        yield f"http://127.0.0.1:{otlp}/v1/traces", f"http://127.0.0.1:{query}"
    finally:
        proc.kill()  # in-memory storage, nothing to keep: its graceful stop takes ~10 s
        proc.wait(10)


def _turn_events(trace_id: str) -> list[ev.Envelope]:
    corr = ev.Correlation(correlation_id="utt-1", trace_id=trace_id)
    common: dict[str, Any] = {
        "tenant_id": "acme",
        "session_id": "call-1",
        "seq": 0,
        "correlation": corr,
    }
    turn: dict[str, Any] = {**common, "turn_id": "call-1-t1", "plan_hash": "h" * 64}
    return [
        ev.Envelope.new(ev.Admit(), **common),
        ev.Envelope.new(ev.TurnOpen(plan_hash="h" * 64, plan_json="{}"), **turn),
        ev.Envelope.new(
            ev.NodeOutput(
                output_seq=0, kind="transcript", text="hi", final=True, latency_us=40_000
            ),
            node_id="stt",
            **turn,
        ),
        ev.Envelope.new(
            ev.NodeOutput(output_seq=0, kind="reply", text="hello", final=True, latency_us=9_000),
            node_id="respond",
            **turn,
        ),
        ev.Envelope.new(
            ev.Cancel(scope=ev.CancelScope.TURN, target="call-1-t1", reason="barge-in"), **turn
        ),
        ev.Envelope.new(ev.TurnAbort(reason="cancelled: barge-in"), **turn),
        ev.Envelope.new(ev.TurnClose(outcome=ev.TurnOutcome.ABORTED), **turn),
        ev.Envelope.new(ev.SessionClose(reason="hangup"), **common),
    ]


def test_spans_reach_jaeger_over_otlp(
    jaeger: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    otlp_url, query = jaeger
    service = f"rspp-test-{uuid.uuid4().hex[:6]}"
    # Configured as an operator does, by the standard variables (what rspp run reads).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_url.removesuffix("/v1/traces"))
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    assert tracing_requested()
    tracer = tracer_from_env()
    trace_id = uuid.uuid4().hex
    assert tracer.trace_id("acme", "call-1", trace_id) == trace_id
    for event in _turn_events(trace_id):
        tracer.logged(event)
    tracer.shutdown()  # exports what finished and waits for the exporter

    found: list[dict[str, Any]] = []

    def stored() -> bool:
        status, body = _get(f"{query}/api/traces/{trace_id}")
        if status == 200:
            found[:] = json.loads(body)["data"][0]["spans"]
        return len(found) == 4

    wait_for(stored, 30, "the trace in jaeger")
    status, body = _get(f"{query}/api/services")
    assert status == 200 and service in json.loads(body)["data"]
    by_name = {s["operationName"]: s for s in found}
    assert set(by_name) == {"session", "turn", "node stt", "node respond"}
    assert {s["traceID"] for s in found} == {trace_id}

    def parent(span: dict[str, Any]) -> str | None:
        refs = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"]
        return refs[0] if refs else None

    assert parent(by_name["session"]) is None
    assert parent(by_name["turn"]) == by_name["session"]["spanID"]
    assert (
        parent(by_name["node stt"]) == parent(by_name["node respond"]) == by_name["turn"]["spanID"]
    )
    events = [
        f["value"] for log in by_name["turn"]["logs"] for f in log["fields"] if f["key"] == "event"
    ]
    assert events == ["cancel", "abort"]
    tags = {t["key"]: t["value"] for t in by_name["node respond"]["tags"]}
    assert tags["gen_ai.operation.name"] == "chat"
