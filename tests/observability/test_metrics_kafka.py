"""Prometheus metrics of a processor under a demo-like load, against its own log.

A real broker, real voice nodes: sessions speak, one barges in, bad records and a
telemetry flood arrive. ``/metrics`` is scraped while the load runs and parsed with
prometheus-client's parser; at the end the counters equal what the committed log and
DLQ say, and the read_committed consumer lag is 0.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer

from pipelines.bundles import read_bundle
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.cli import main
from streams.client import VoiceClient
from streams.nodes import synthesize_pcm16
from streams.observability import LagReader, MetricsServer, ProcessorMetrics
from streams.runtime.processor import ProcessorConfig
from streams.testing import ProcessorThread, read_dlq, read_log
from streams.topics import Lane, TopicLayout, apply_topics
from tests.observability.helpers import BUNDLE, Scrape, scrape
from tests.runtime.procs import REPO, wait_for

pytestmark = pytest.mark.kafka

PARTITIONS = 2
SESSIONS = 4


def test_scraped_counters_agree_with_the_log(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = unique_prefix()
    layout = TopicLayout(prefix=prefix, partitions=PARTITIONS)
    apply_topics(kafka_bootstrap, layout)
    lag = LagReader(
        bootstrap=kafka_bootstrap,
        group=f"rspp-{prefix}",
        topics=[layout.lane_topic(lane) for lane in Lane],
    )
    metrics = ProcessorMetrics(lag=lag)
    server = MetricsServer(metrics.registry, port=0, host="127.0.0.1")
    speech = synthesize_pcm16("what time is it")
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap,
        prefix=prefix,
        bundle=read_bundle(BUNDLE),
        drain_grace_s=10,
        observer=metrics,
    )
    during: list[Scrape] = []
    produced = 0
    try:
        with ProcessorThread(config) as running:
            client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
            sessions = [client.open_session(f"m{n}") for n in range(SESSIONS)]
            client.flush()
            wait_for(
                lambda: len(running.processor.engine.sessions) >= SESSIONS,
                30,
                "the sessions to open",
            )
            stats = running.processor.stats
            for round_ in range(2):
                for n, s in enumerate(sessions):
                    half = round_ == 1 and n == 0
                    audio = speech[: len(speech) // 2] if half else speech
                    for i in range(0, len(audio), 640):
                        s.send_audio(audio[i : i + 640])
                    if half:  # barge-in: cancel the turn while it listens
                        client.flush()
                        wait_for(
                            lambda: stats.turns_opened >= SESSIONS + 1,
                            30,
                            "the barge-in turn to open",
                        )
                        s.cancel(reason="barge-in")
                    else:
                        s.end_utterance()
                client.flush()
                during.append(scrape(server.url))
                wait_for(
                    lambda r=round_: (
                        stats.turns_committed + stats.turns_aborted >= SESSIONS * (r + 1)
                    ),
                    90,
                    f"round {round_} turns to close",
                )
            # A flood while a turn responds: the held utterances overflow and are shed.
            flooder = sessions[1]
            for i in range(0, len(speech), 640):
                flooder.send_audio(speech[i : i + 640])
            flooder.end_utterance()
            client.flush()
            for _ in range(1200):
                flooder.send_audio(bytes(640))
            flooder.end_utterance()
            raw = Producer({"bootstrap.servers": kafka_bootstrap})
            for junk in (b"not avro at all", b"\x00\x00\x00"):
                raw.produce(layout.data, junk, key=b"m9")
            raw.flush(10)
            client.flush()
            during.append(scrape(server.url))
            produced = sum(s.sent for s in sessions) + 2
            wait_for(
                lambda: running.processor.records_handled + stats.shed >= produced,
                60,
                "every record to be applied, shed or dead-lettered",
            )

            def caught_up() -> bool:
                now = scrape(server.url)
                return (
                    now.value("rspp_consumer_lag_up") == 1
                    and now.total("rspp_consumer_lag_records") == 0
                )

            wait_for(caught_up, 30, "consumer lag to reach 0")
        final = scrape(server.url)
        capsys.readouterr()
        top = _top(
            [
                "top",
                "--prefix",
                prefix,
                "--metrics",
                server.url,
                "--once",
                "--json",
                "--bootstrap",
                kafka_bootstrap,
            ],
            capsys,
        )
    finally:
        server.close()
        lag.close()

    rows = [r.event for r in read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)]
    dlq = [r.event.payload for r in read_dlq(kafka_bootstrap, prefix, partitions=PARTITIONS)]
    assert check_log(read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)) == []
    kinds = Counter(type(e.payload) for e in rows)
    aborts = [e.payload.reason for e in rows if isinstance(e.payload, ev.TurnAbort)]
    sheds = sum(e.payload.shed_count for e in rows if isinstance(e.payload, ev.Shed))

    # Every scrape during the load parsed, and the turn counters only grew.
    assert len(during) == 3
    opened = [s.value("rspp_turns_opened_total") for s in during]
    assert opened == sorted(opened) and opened[-1] >= SESSIONS * 2 - 1
    # The counters are the log's.
    assert final.value("rspp_turns_opened_total") == kinds[ev.TurnOpen] >= SESSIONS * 2 + 1
    assert final.value("rspp_turns_committed_total") == kinds[ev.TurnCommit] >= SESSIONS * 2
    assert final.total("rspp_turns_aborted_total") == len(aborts) >= 1
    assert (
        final.value("rspp_turns_aborted_total", reason="cancelled")
        == sum(1 for a in aborts if a.startswith("cancelled"))
        == 1
    )
    assert final.total("rspp_shed_records_total") == sheds > 0
    assert final.total("rspp_dlq_records_total") == len(dlq) >= 2
    assert final.value("rspp_playback_started") == 0  # no such family: names are not invented
    # Latency histograms saw every committed turn's first audio and STT final.
    committed = kinds[ev.TurnCommit]
    assert final.value("rspp_turn_first_audio_seconds_count") == committed
    assert final.value("rspp_stage_latency_seconds_count", stage="stt_final") >= committed
    assert final.value("rspp_stage_latency_seconds_count", stage="tts_first_chunk") == committed
    assert final.value("rspp_transactions_total", outcome="committed") > 0
    assert final.value("rspp_control_wait_seconds_count") == SESSIONS + 1  # opens + cancel
    assert final.value("rspp_lease_grants_total") == PARTITIONS
    # Lag: the lane topics' stable offsets are everything produced, all of it committed.
    assert final.total("rspp_consumer_stable_offset") == produced
    assert final.total("rspp_consumer_lag_records") == 0
    # Low cardinality: no session id in any label value.
    values = {v for (_, labels) in final.samples for _, v in labels}
    assert not any(s.session_id in v for s in sessions for v in values)
    # The Grafana dashboard asks only for series that exist.
    dashboard = json.loads((REPO / "docs" / "operations" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    asked = {m for e in exprs for m in re.findall(r"\b(rspp_[a-z_]+)", e)}
    exposed = {name for (name, _) in final.samples}
    assert asked and asked <= exposed, asked - exposed
    # rspp top --once --json: the same numbers, from the log and the endpoint.
    assert top["sessions"] == SESSIONS and top["open_turns"] == 0
    assert top["turns"] == {"committed": kinds[ev.TurnCommit], "aborted": len(aborts)}
    assert sum(top["shed"].values()) == sheds and sum(top["dlq"].values()) == len(dlq)
    assert {(r["topic"], r["lag"]) for r in top["lag"]} == {
        (layout.lane_topic(lane), 0) for lane in Lane
    }
    p95 = top["latency_seconds"]["first audio"]["p95"]
    assert p95 is not None and 0 < p95 <= 30


def _top(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code in (0, None)
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out
