"""Against the real broker: headers route without decode, Faust reads RSPP events."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.abi import EventCodec, parse_routing_headers
from streams.abi import events as ev
from streams.abi.registry import FileRegistry
from streams.config import repo_root
from tests.abi.samples import envelope

pytestmark = pytest.mark.kafka


def _topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)


def _produce(bootstrap: str, topic: str, events: list[ev.Envelope]) -> EventCodec:
    codec = EventCodec(registry=FileRegistry(), source="urn:rspp:test")
    producer = Producer({"bootstrap.servers": bootstrap})
    for event in events:
        value, headers = codec.encode_with_headers(event)
        producer.produce(topic, value, key=event.session_id.encode(), headers=headers)
    assert producer.flush(30) == 0
    return codec


def test_produced_events_route_by_headers_and_decode(kafka_bootstrap: str, unique_prefix: Callable[[], str]) -> None:
    topic = unique_prefix() + ".control"
    _topic(kafka_bootstrap, topic)
    sent = [envelope(ev.Cancel(scope=ev.CancelScope.TURN, target="turn-1"), seq=1),
            envelope(ev.Telemetry(name="rtt", value=1.5), seq=2)]
    codec = _produce(kafka_bootstrap, topic, sent)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique_prefix(), "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[ev.Envelope] = []
    try:
        while len(got) < len(sent):
            msg = consumer.poll(10)
            assert msg is not None, "timed out waiting for records"
            assert msg.error() is None
            route = parse_routing_headers(msg.headers())
            assert route.session_id == "sess-1"
            decoded = codec.decode(msg.value())
            assert route.lane is decoded.lane
            assert route.event_type is decoded.event_type
            got.append(decoded)
    finally:
        consumer.close()
    assert got == sent


def test_faust_app_reads_rspp_events(kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path) -> None:
    topic = unique_prefix() + ".data"
    _topic(kafka_bootstrap, topic)
    sent = [envelope(ev.Transcript(kind=ev.TranscriptKind.FINAL, text=f"hello {i}"), seq=i) for i in range(3)]
    _produce(kafka_bootstrap, topic, sent)
    out = tmp_path / "faust.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "tests.abi.faust_app", kafka_bootstrap, topic, unique_prefix(), "3", str(out)],
        cwd=repo_root(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["event_id"] for r in rows] == [e.event_id for e in sent]
    assert {r["payload"] for r in rows} == {"Transcript"}
    assert [r["text"] for r in rows] == ["hello 0", "hello 1", "hello 2"]
