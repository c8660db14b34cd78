"""Against a real broker: an export records the cluster id and every partition's offsets,
is signed by ``rspp export --sign-key``, and replays verified, or fails with the reason."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
import pytest

from replay import ContainerLogSource, replay
from streams.abi.codec import EventCodec
from streams.abi.events import Envelope
from streams.cli import main
from streams.topics import TopicLayout, apply_topics
from tests.replay import gen_fixtures as gen
from tests.replay.test_evidence import _globex_log

pytestmark = pytest.mark.kafka


def _append(bootstrap: str, prefix: str, partitions: Sequence[Sequence[Envelope]]) -> str:
    """One committed transaction over every partition (as `rspp run`); returns the log topic."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    layout = TopicLayout(prefix=prefix, partitions=len(partitions))
    apply_topics(bootstrap, layout)
    codec = EventCodec()
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{prefix}-writer"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for p, events in enumerate(partitions):
        for env in events:
            value, headers = codec.encode_with_headers(env)
            producer.produce(layout.log, value, key=env.session_id.encode(), headers=headers,
                             partition=p)
    producer.commit_transaction(30)
    # The commit markers land a moment after commit_transaction returns: wait until a
    # read_committed reader's end offset is the high watermark on every partition.
    committed = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm-rc",
                          "isolation.level": "read_committed"})
    try:
        for p, events in enumerate(partitions):
            for _ in range(600):
                if committed.get_watermark_offsets(TopicPartition(layout.log, p),
                                                   timeout=10)[1] > len(events):
                    break
                time.sleep(0.05)
    finally:
        committed.close()
    return layout.log


def _cluster_id(bootstrap: str) -> str:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the answer arrives
    cluster = admin.describe_cluster().result(timeout=10)
    return str(cluster.cluster_id)


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_signed_export_from_kafka_is_complete_and_a_lost_partition_is_caught(
        kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    prefix = unique_prefix()
    p0, p1 = gen.clean_log(), _globex_log()
    topic = _append(kafka_bootstrap, prefix, [p0, p1])
    keys = tmp_path / "keys"
    assert _main(["keys", "generate", "--out", str(keys)], capsys)[0] == 0
    out = tmp_path / "export"
    code, text, _ = _main(["export", "--prefix", prefix, "--out", str(out), "--bootstrap",
                        kafka_bootstrap, "--bundles", str(gen.BUNDLE.parent),
                        "--sign-key", str(keys / "rspp-export.key")], capsys)
    assert code == 0 and text.rstrip().endswith(", signed")
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    export = manifest["export"]
    assert export["prefix"] == prefix and export["cluster_id"] == _cluster_id(kafka_bootstrap)
    # One transaction: each partition's records are contiguous from 0, then its commit marker.
    assert [(p["partition"], p["file"], p["records"], p["offsets"], p["log_start"], p["log_end"])
            for p in manifest["partitions"]] == [
        (0, f"{topic}.p0.avro", len(p0), [[0, len(p0) - 1]], 0, len(p0) + 1),
        (1, f"{topic}.p1.avro", len(p1), [[0, len(p1) - 1]], 0, len(p1) + 1)]
    sessions = {(s["tenant_id"], s["session_id"]): len(s["turns"]) for s in manifest["sessions"]}
    assert sessions[("acme", "s1")] == 2 and sessions[("globex", "s1")] == 1

    public = str(keys / "rspp-export.pub")
    code, text, _ = _main(["replay", str(out), "--verify-key", public], capsys)
    assert code == 0 and "clean" in text
    verified = replay(ContainerLogSource(out, verify_key=keys / "rspp-export.pub"))
    assert verified.ok and len([t for t in verified.turns if t.turn_id]) == 5

    (out / f"{topic}.p1.avro").unlink()
    code, text, _ = _main(["replay", str(out), "--verify-key", public, "--json"], capsys)
    integrity = orjson.loads(text)["integrity"]
    assert code == 1 and integrity[0] == (
        f"missing partition file: {topic}.p1.avro (partition 1, {len(p1)} records) is listed in "
        "the manifest but not present")
    # Dropping the partition from a re-written manifest breaks the signature instead.
    manifest["files"] = manifest["files"][:1]
    manifest["partitions"] = manifest["partitions"][:1]
    manifest["sessions"] = [s for s in manifest["sessions"] if s["tenant_id"] == "acme"]
    (out / "manifest.json").write_bytes(orjson.dumps(manifest))
    code, text, _ = _main(["replay", str(out), "--verify-key", public], capsys)
    assert code == 1 and "signature: the manifest does not verify with rspp-export.pub" in text
