"""A real Prometheus server (Debian's ``prometheus``) scrapes a processor and answers PromQL.

Prometheus listens on a loopback port; readiness is its ``/-/ready`` endpoint. The
first-audio p95 it computes equals ``rspp top``'s from the same buckets.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.bundles import read_bundle
from streams.client import VoiceClient
from streams.nodes import synthesize_pcm16
from streams.observability import MetricsServer, ProcessorMetrics
from streams.observability.top import histogram_quantile
from streams.runtime.processor import ProcessorConfig
from streams.testing import ProcessorThread
from streams.topics import TopicLayout, apply_topics
from tests.observability.helpers import BUNDLE, scrape
from tests.runtime.procs import REPO, wait_for

pytestmark = pytest.mark.kafka

P95 = "histogram_quantile(0.95, sum by (le) (rspp_turn_first_audio_seconds_bucket))"


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


class _Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base

    def ready(self) -> bool:
        return _get(f"{self.base}/-/ready")[0] == 200

    def query(self, promql: str) -> list[dict[str, Any]]:
        status, body = _get(
            f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        )
        if status != 200:
            return []
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def metrics_server() -> Iterator[tuple[ProcessorMetrics, MetricsServer]]:
    metrics = ProcessorMetrics()
    server = MetricsServer(metrics.registry, port=0, host="127.0.0.1")
    yield metrics, server
    server.close()


@pytest.fixture
def prometheus(
    tmp_path: Path, metrics_server: tuple[ProcessorMetrics, MetricsServer]
) -> Iterator[_Prometheus]:
    binary = shutil.which("prometheus")
    assert binary is not None, "Debian's prometheus is missing: run `make system-deps`"
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: rspp\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_server[1].port}']}}]\n"
    )
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = _Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: server.ready() or proc.poll() is not None, 60, "prometheus /-/ready")
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_the_shipped_prometheus_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "Debian's prometheus is missing: run `make system-deps`"
    config = REPO / "docs" / "operations" / "prometheus.yml"
    done = subprocess.run(
        [promtool, "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_answers_the_first_audio_p95(
    kafka_bootstrap: str,
    unique_prefix: Callable[[], str],
    metrics_server: tuple[ProcessorMetrics, MetricsServer],
    prometheus: _Prometheus,
) -> None:
    metrics, server = metrics_server
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=1))
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap,
        prefix=prefix,
        bundle=read_bundle(BUNDLE),
        drain_grace_s=10,
        observer=metrics,
    )
    speech = synthesize_pcm16("turn on the lights")
    with ProcessorThread(config) as running:
        client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
        for n in range(3):
            s = client.open_session(f"p{n}")
            for i in range(0, len(speech), 640):
                s.send_audio(speech[i : i + 640])
            s.end_utterance()
        client.flush()
        wait_for(lambda: running.processor.stats.turns_committed >= 3, 90, "three turns")
    wait_for(lambda: prometheus.scalar("up{job='rspp'}") == 1, 60, "the target to be up")
    wait_for(
        lambda: prometheus.scalar("sum(rspp_turn_first_audio_seconds_count)") == 3,
        60,
        "a scrape after the three turns",
    )
    p95 = prometheus.scalar(P95)
    assert p95 is not None and math.isfinite(p95) and p95 > 0
    # The same quantile from the same buckets, as rspp top computes it.
    here = scrape(server.url)
    buckets = [
        (float(dict(lab)["le"]), v)
        for (name, lab), v in here.samples.items()
        if name == "rspp_turn_first_audio_seconds_bucket"
    ]
    assert p95 == pytest.approx(histogram_quantile(0.95, buckets), rel=1e-9)
