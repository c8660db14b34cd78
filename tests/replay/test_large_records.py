"""Readers of P.log and P.dlq take any record those topics hold (up to 4 MiB), not the
lanes' 1 MiB: a dead letter of a lane-sized record, and one near the output limit, are
shown by `rspp dlq show`, loaded by `rspp audit load` and exported by `rspp export`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner, Result

from replay.sources import ContainerLogSource
from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.adapters import LogFollower
from streams.cli import _register, app
from streams.testing import read_dlq, read_log
from streams.topics import (
    INGRESS_MAX_RECORD_BYTES,
    OUTPUT_MAX_RECORD_BYTES,
    TopicLayout,
    apply_topics,
)

pytestmark = pytest.mark.kafka

# What the processor's producer may write (it keeps 64 KiB of the topic limit for overhead).
NEAR_LIMIT = OUTPUT_MAX_RECORD_BYTES - (80 << 10)
SIZES = (INGRESS_MAX_RECORD_BYTES - 64, NEAR_LIMIT)  # a lane-sized original, and the largest
HEADERS = tuple(ev.Header(key=f"rspp_{k}", value=b"x" * 40) for k in ("tenant", "session", "type", "id"))


def _cli(*args: str) -> Result:
    _register()
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def _write(bootstrap: str, layout: TopicLayout) -> None:
    codec = EventCodec(max_frame_bytes=OUTPUT_MAX_RECORD_BYTES)
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": OUTPUT_MAX_RECORD_BYTES})
    for n, size in enumerate(SIZES):
        dead = ev.Envelope.new(
            ev.DeadLetter(reason=f"big_{n}", original_topic=layout.data, original_partition=0,
                          original_offset=n, original_bytes=bytes([n + 1]) * size,
                          original_headers=HEADERS),
            tenant_id="__system__", session_id=f"s{n}", seq=n)
        chunk = ev.Envelope.new(
            ev.AudioChunk(codec="pcm16", sample_rate=16000, channels=1, seq=0, audio=b"\x01" * size),
            tenant_id="acme", session_id=f"s{n}", seq=1)
        for topic, event in ((layout.dlq, dead), (layout.log, chunk)):
            frame = codec.encode(event)
            assert len(frame) > 1 << 20  # beyond the lanes' limit, the old readers' limit
            producer.produce(topic, value=frame, key=event.session_id.encode(), partition=0)
    assert producer.flush(30) == 0


def test_large_dead_letters_and_log_records_are_read(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    prefix = unique_prefix()
    layout = TopicLayout(prefix=prefix, partitions=1)
    apply_topics(kafka_bootstrap, layout)
    _write(kafka_bootstrap, layout)

    shown = _cli("dlq", "show", "--prefix", prefix, "--bootstrap", kafka_bootstrap, "--json")
    assert shown.exit_code == 0, shown.output
    records = orjson.loads(shown.stdout)["records"]
    assert [(r["reason"], r["bytes"]) for r in records] == [("big_0", SIZES[0]), ("big_1", SIZES[1])]

    db = tmp_path / "audit.duckdb"
    loaded = _cli("audit", "load", "--db", str(db), "--prefix", prefix, "--bootstrap", kafka_bootstrap)
    assert loaded.exit_code == 0, loaded.output
    assert "loaded 2 events and 2 dead letters" in loaded.stdout
    sizes = _cli("audit", "sql", "--db", str(db), "--format", "json",
                 "SELECT p_original_bytes_bytes AS n FROM dead_letters ORDER BY n")
    assert sizes.exit_code == 0, sizes.output
    assert [row["n"] for row in orjson.loads(sizes.stdout)] == list(SIZES)

    out = tmp_path / "export"
    exported = _cli("export", "--out", str(out), "--prefix", prefix, "--bootstrap", kafka_bootstrap)
    assert exported.exit_code == 0, exported.output
    audio = [len(e.payload.audio) for _, e in ContainerLogSource(out)
             if isinstance(e.payload, ev.AudioChunk)]
    assert audio == list(SIZES)

    # The test helpers read them too.
    assert [len(r.event.payload.original_bytes or b"") for r in read_dlq(kafka_bootstrap, prefix, partitions=1)
            if isinstance(r.event.payload, ev.DeadLetter)] == list(SIZES)
    assert len(read_log(kafka_bootstrap, prefix, partitions=1)) == 2

    follower = LogFollower(bootstrap=kafka_bootstrap, prefix=prefix, partitions=1).start()
    try:
        for _ in range(600):  # until both records are consumed, either way
            if follower.events + follower.undecodable >= 2:
                break
            time.sleep(0.05)
    finally:
        follower.stop()
    assert (follower.events, follower.undecodable) == (2, 0)
