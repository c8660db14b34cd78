"""Invariant 15 (docs/architecture.md) in the runtime: the version-skew window at ingress and at process start.

- Ingress frames written with an envelope schema version whose Event ABI is
  outside the policy's window go to the DLQ with reason
  ``schema_version_outside_window: …`` — although the codec could decode them —
  while an in-window older/newer version is processed.
- ``rspp run`` refuses a bundle built for an ABI outside the policy: one line on
  stderr, exit code ≠ 0, nothing run.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from fastavro import parse_schema, schemaless_writer

from pipelines.bundles import bundle_digest, read_bundle
from pipelines.loader import load_artifact
from pipelines.models.compat import VersionSkewPolicy
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.abi.records import envelope_to_record
from streams.abi.registry import FileRegistry, SchemaVersion
from streams.abi.schemas import ENVELOPE
from streams.runtime.ingress_skew import SKEW_REASON, IngressSkewGate
from streams.runtime.processor import ProcessorConfig
from streams.testing import ProcessorThread, read_dlq, read_log
from streams.topics import Lane, TopicLayout, apply_topics
from tests.runtime.procs import REPO, wait_for

BUNDLE = REPO / "pipelines/bundles/voice_assistant_bundle_v1.json"
POLICY_FILE = REPO / "pipelines/compat/version_skew_policy_v1.yaml"


def _policy() -> VersionSkewPolicy:
    loaded, _ = load_artifact(POLICY_FILE)
    assert loaded is not None and isinstance(loaded.model, VersionSkewPolicy)
    return loaded.model


def _variant(schema: Any, field: str) -> Any:
    """The envelope schema plus one optional field: another version, decodable by today's reader."""
    other = copy.deepcopy(schema)
    other["fields"].append({"name": field, "type": ["null", "string"], "default": None})
    return other


class _Frames:
    """Envelope schema versions recorded in a temporary file registry, with their ABI labels."""

    def __init__(self, path: Path) -> None:
        self.registry = FileRegistry(path)
        self.codec = EventCodec(registry=self.registry)
        self.versions: dict[str, SchemaVersion] = {}
        self._parsed: dict[str, Any] = {}
        for abi in ("0.9.0", "1.1.0", "1.3.0"):  # old major, in window, too new a minor
            schema = _variant(self.codec.schema, f"x_abi_{abi.replace('.', '_')}")
            self.versions[abi] = self.registry.record(ENVELOPE, schema, abi_version=abi)
            self._parsed[abi] = parse_schema(schema)

    def frame(self, event: ev.Envelope, abi: str) -> bytes:
        out = BytesIO()
        out.write(b"\x00" + self.versions[abi].schema_id.to_bytes(4, "big"))
        record = envelope_to_record(event)
        record[f"x_abi_{abi.replace('.', '_')}"] = None
        schemaless_writer(out, self._parsed[abi], record)
        return out.getvalue()


def test_the_gate_judges_each_schema_version_by_its_abi(tmp_path: Path) -> None:
    frames = _Frames(tmp_path / "registry.json")
    gate = IngressSkewGate(
        policy=_policy(), registry=frames.registry, subject=ENVELOPE, runtime_abi="1.0.0",
        own_schema_id=frames.codec.schema_id,
    )
    event = ev.Envelope.new(ev.Transcript(kind=ev.TranscriptKind.FINAL, text="stop"), tenant_id="t", session_id="s", seq=0)
    old, ok, new = (frames.frame(event, abi) for abi in ("0.9.0", "1.1.0", "1.3.0"))
    # The codec itself would accept all three (fastavro resolves the extra field) ...
    assert {frames.codec.decode(f).event_id for f in (old, ok, new)} == {event.event_id}
    # ... the policy does not.
    assert gate.check(frames.codec.encode(event)) is None
    assert gate.check(ok) is None
    old_reason, new_reason = gate.check(old), gate.check(new)
    assert old_reason is not None and old_reason.startswith(f"{SKEW_REASON}: ")
    assert "ABI 0.9.0" in old_reason and "major skew 1" in old_reason
    assert new_reason is not None and "ABI 1.3.0" in new_reason and "minor skew 3" in new_reason
    # Unknown ids and garbage are the codec's business (unknown_schema / bad_framing).
    assert gate.check(b"\x00\x7f\xff\xff\xff\x00") is None and gate.check(b"junk") is None


@pytest.mark.kafka
def test_ingress_outside_the_window_is_dead_lettered_with_that_reason(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    prefix = unique_prefix()
    layout = TopicLayout(prefix=prefix, partitions=2)
    apply_topics(kafka_bootstrap, layout)
    frames = _Frames(tmp_path / "registry.json")
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=read_bundle(BUNDLE), drain_grace_s=5,
        skew_policy=_policy(), schema_registry=frames.registry,
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    sent: dict[str, bytes] = {}

    def send(event: ev.Envelope, abi: str | None = None) -> None:
        value = frames.codec.encode(event) if abi is None else frames.frame(event, abi)
        topic = layout.lane_topic(Lane(event.lane.value))
        producer.produce(topic, value, key=event.session_id, headers=frames.codec.headers(event))
        sent[event.event_id] = value

    session = "skew-s1"
    seq = iter(range(100))

    def event(payload: ev.Payload) -> ev.Envelope:
        return ev.Envelope.new(payload, tenant_id="acme", session_id=session, seq=next(seq))

    with ProcessorThread(config) as running:
        send(event(ev.SessionOpen(transport="sdk", locale="en-US")))
        stale = event(ev.Transcript(kind=ev.TranscriptKind.FINAL, text="what time is it"))
        send(stale, "0.9.0")
        future = event(ev.Transcript(kind=ev.TranscriptKind.FINAL, text="play some music"))
        send(future, "1.3.0")
        fine = event(ev.Transcript(kind=ev.TranscriptKind.FINAL, text="stop"))
        send(fine, "1.1.0")
        producer.flush(10)
        wait_for(lambda: running.processor.stats.turns_committed >= 1, 30, "the in-window turn")
        wait_for(lambda: running.processor.dlq_count >= 2, 10, "the out-of-window dead letters")

    dlq = read_dlq(kafka_bootstrap, prefix, partitions=2)
    letters = {r.event.payload.original_bytes: r.event.payload.reason for r in dlq}  # type: ignore[union-attr]
    assert set(letters) == {sent[stale.event_id], sent[future.event_id]}
    assert all(reason.startswith(f"{SKEW_REASON}: ") for reason in letters.values())
    rows = read_log(kafka_bootstrap, prefix, partitions=2)
    assert check_log(rows) == []
    recorded = {r.event.event_id for r in rows}
    assert fine.event_id in recorded and not {stale.event_id, future.event_id} & recorded


def test_rspp_run_refuses_a_bundle_outside_the_policy(tmp_path: Path) -> None:
    data = orjson.loads(BUNDLE.read_bytes())
    data["compat_window"] = {
        "abi_version": "2.1.0", "runtime_abi_min": "2.0.0", "runtime_abi_max_exclusive": "3.0.0"
    }
    data["digest"] = bundle_digest(data)  # an honest bundle, only built for another ABI
    bundle = tmp_path / "future_bundle.json"
    bundle.write_bytes(orjson.dumps(data))
    assert read_bundle(bundle).compat_window.abi_version == "2.1.0"
    done = subprocess.run(
        [sys.executable, "-c", "from streams.cli import main; main()", "run", "--prefix",
         "never-used", "--bundle", str(bundle), "--bootstrap", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rspp: error: ") and "version-skew" in lines[0]
    assert "ABI 2.1.0 vs runtime 1.0.0: major skew 1" in lines[0]
