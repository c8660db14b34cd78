"""The lane contract's Faust producer example, run as written, is served by the processor.

The example in docs/lane_contract.md sends an utterance without any ``rspp_*`` header:
the processor routes by topic and decodes the body, so the turn runs all the same.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.bundles import read_bundle
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.config import repo_root
from streams.runtime.processor import ProcessorConfig
from streams.testing import ProcessorThread, read_dlq, read_log
from streams.topics import TopicLayout, apply_topics
from tests.fault.harness import BUNDLE, wait_for

pytestmark = pytest.mark.kafka

DOC = repo_root() / "docs" / "lane_contract.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "the lane contract holds one Python example"
    return str(blocks[0])


def test_a_faust_producer_without_rspp_headers_is_served(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=2))
    script = tmp_path / "faust_voice.py"
    script.write_text(_example())
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=read_bundle(BUNDLE), drain_grace_s=5
    )
    with ProcessorThread(config) as running:
        done = subprocess.run(
            [sys.executable, str(script), kafka_bootstrap, prefix, "faust-call"],
            cwd=repo_root(),
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        wait_for(lambda: running.processor.stats.turns_committed >= 1, 60, "the Faust caller's turn")
    rows = read_log(kafka_bootstrap, prefix, partitions=2)
    assert check_log(rows) == []
    mine = [r.event for r in rows if r.event.session_id == "faust-call"]
    assert ev.EventType.TURN_COMMIT in {e.event_type for e in mine}
    assert read_dlq(kafka_bootstrap, prefix, partitions=2) == []
