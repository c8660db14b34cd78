"""A session closed and opened again continues its log: seq and turn ids never repeat."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.bundles import read_bundle
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.client import VoiceClient
from streams.runtime.processor import ProcessorConfig
from streams.testing import ProcessorThread, read_log
from streams.topics import TopicLayout, apply_topics

pytestmark = pytest.mark.kafka
BUNDLE = (
    Path(__file__).resolve().parents[2] / "pipelines" / "bundles" / "voice_assistant_bundle_v1.json"
)


def test_reopened_session_continues_its_seq_and_turn_ids(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=1))
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=read_bundle(BUNDLE), drain_grace_s=5
    )
    with ProcessorThread(config) as running:
        client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix)
        for n in range(1, 3):
            call = client.open_session("again")
            call.send_transcript("play some music")
            client.flush()
            deadline = time.monotonic() + 30
            while running.processor.stats.turns_committed < n and time.monotonic() < deadline:
                time.sleep(0.05)
            call.close()
            client.flush()
        deadline = time.monotonic() + 10
        while running.processor.stats.events_in < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    rows = [
        r for r in read_log(kafka_bootstrap, prefix, partitions=1) if r.event.session_id == "again"
    ]
    assert check_log(rows) == []
    seqs = [r.event.seq for r in rows]
    assert seqs == list(range(len(seqs)))
    opens = [r.event.turn_id for r in rows if r.event.event_type is ev.EventType.TURN_OPEN]
    assert opens == ["again-t1", "again-t2"]
    assert sum(1 for r in rows if r.event.event_type is ev.EventType.ADMIT) == 2
