"""Against a real broker: read_committed log source, export round trip, bad records (exit 2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
import pytest

from replay import CorruptInputError, KafkaLogSource, replay
from streams.abi.codec import EventCodec
from streams.abi.events import Envelope
from streams.cli import main
from streams.topics import TopicLayout, apply_topics
from tests.replay import gen_fixtures as gen

pytestmark = pytest.mark.kafka


def _append(bootstrap: str, prefix: str, events: Sequence[Envelope], *,
            extra: Sequence[bytes] = ()) -> None:
    """Write events to <prefix>.log partition 0 in one committed transaction (as `rspp run`)."""
    from confluent_kafka import Producer

    layout = TopicLayout(prefix=prefix, partitions=1)
    apply_topics(bootstrap, layout)
    codec = EventCodec()
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{prefix}-writer"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for env in events:
        value, headers = codec.encode_with_headers(env)
        producer.produce(layout.log, value, key=env.session_id.encode(), headers=headers,
                         partition=0)
    for raw in extra:
        producer.produce(layout.log, raw, key=b"x", partition=0)
    producer.commit_transaction(30)
    _wait_stable(bootstrap, layout.log)


def _wait_stable(bootstrap: str, topic: str, timeout: float = 30.0) -> None:
    """Wait until read_committed readers see the whole partition.

    commit_transaction returns once the coordinator has decided; the commit markers reach
    the partition a moment later, and until then a read_committed watermark query (what
    KafkaLogSource takes as the end) stops at the last stable offset before the transaction.
    """
    import time

    from confluent_kafka import Consumer, TopicPartition

    tp = TopicPartition(topic, 0)
    uncommitted = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm-ru",
                            "isolation.level": "read_uncommitted"})
    committed = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm-rc",
                          "isolation.level": "read_committed"})
    try:
        _, high = uncommitted.get_watermark_offsets(tp, timeout=10)
        deadline = time.monotonic() + timeout
        # The marker occupies the last offset: stable means the LSO is the high watermark.
        while committed.get_watermark_offsets(tp, timeout=10)[1] < high:
            assert time.monotonic() < deadline, f"{topic}: transaction never became stable"
            time.sleep(0.05)
    finally:
        uncommitted.close()
        committed.close()


def test_log_topic_replays_clean_and_exports_losslessly(
        kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    prefix = unique_prefix()
    events = gen.clean_log()
    _append(kafka_bootstrap, prefix, events)

    read = list(KafkaLogSource(kafka_bootstrap, prefix))
    assert [env for _, env in read] == events
    assert str(read[0][0]) == f"{prefix}.log[0]@0"
    bundles = [gen.BUNDLE.parent]
    result = replay(KafkaLogSource(kafka_bootstrap, prefix), bundle_dirs=bundles)
    assert result.ok and len(result.turns) == 4

    out = tmp_path / "export"
    with pytest.raises(SystemExit) as info:
        main(["export", "--prefix", prefix, "--out", str(out), "--bootstrap", kafka_bootstrap,
              "--codec", "zstd", "--bundles", str(gen.BUNDLE.parent)])
    assert info.value.code in (None, 0)
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["kind"] == "ReplayEvidenceManifest"
    assert manifest["export"]["codec"] == "zstandard" and manifest["export"]["events"] == len(events)
    (file,) = manifest["files"]
    assert file["records"] == len(events) and file["sha256"].startswith("sha256:")
    assert [b["bundle_id"] for b in manifest["bundles"]] == ["voice_assistant@1.0.0"]
    assert (out / manifest["bundles"][0]["path"]).is_file()
    turns = [t["turn_id"] for s in manifest["sessions"] for t in s["turns"]]
    assert turns == ["t1", "t2", "t3", "t4"]

    from replay import ContainerLogSource

    assert [env for _, env in ContainerLogSource(out)] == events  # lossless round trip
    with pytest.raises(SystemExit) as info:
        main(["replay", str(out), "--resimulate"])
    assert info.value.code == 0
    capsys.readouterr()


def test_session_filter_and_unknown_schema_id(kafka_bootstrap: str,
                                              unique_prefix: Callable[[], str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    prefix = unique_prefix()
    events = gen.clean_log()
    _append(kafka_bootstrap, prefix, events)
    only = replay(KafkaLogSource(kafka_bootstrap, prefix, session="s1"),
                  bundle_dirs=[gen.BUNDLE.parent])
    assert only.ok and [t.turn_id for t in only.turns] == ["t1", "t2"]
    # The transaction marker took an offset: the bad record lands one past it.
    _append(kafka_bootstrap, prefix, (), extra=[b"\x00\x7f\xff\xff\x01garbage"])
    bad = len(events) + 1
    with pytest.raises(CorruptInputError, match=rf"{prefix}\.log\[0\]@{bad}: unknown schema"):
        replay(KafkaLogSource(kafka_bootstrap, prefix), bundle_dirs=[gen.BUNDLE.parent])
    with pytest.raises(SystemExit) as info:
        main(["replay", "--prefix", prefix, "--bootstrap", kafka_bootstrap,
              "--bundles", str(gen.BUNDLE.parent)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"{prefix}.log[0]@{bad}" in err
