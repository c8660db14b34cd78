"""``rspp run --metrics-port``: the endpoint of a real processor process, and its errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.observability.helpers import BUNDLE, Scrape, scrape
from tests.runtime.procs import REPO, RsppProcess, wait_for

pytestmark = pytest.mark.kafka


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_serves_metrics_on_the_given_port(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    port = _free_port()
    proc = RsppProcess(
        bootstrap=kafka_bootstrap,
        prefix=unique_prefix(),
        bundle=BUNDLE,
        holder="metrics-1",
        workdir=tmp_path,
        partitions=2,
        extra=["--metrics-port", str(port), "--metrics-host", "127.0.0.1"],
    )
    proc.start()
    seen: list[Scrape] = []

    def assigned() -> bool:
        assert proc.alive, proc.stderr()[-2000:]
        try:
            seen[:] = [scrape(f"http://127.0.0.1:{port}/metrics")]
        except OSError:
            return False
        return seen[0].value("rspp_lease_grants_total") == 2

    try:
        wait_for(assigned, 90, "the processor to take its two partitions")
        assert seen[0].value("rspp_consumer_lag_up") == 1
        assert seen[0].total("rspp_consumer_lag_records") == 0
        summary = proc.stop()
    finally:
        proc.ensure_dead()
    assert summary["holder"] == "metrics-1" and summary["dlq"] == 0
    assert f"metrics on http://127.0.0.1:{port}/metrics" in proc.stderr()


def test_a_port_in_use_is_a_one_line_error(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "from streams.cli import main; main()",
                "run",
                "--prefix",
                unique_prefix(),
                "--bundle",
                str(BUNDLE),
                "--bootstrap",
                kafka_bootstrap,
                "--metrics-port",
                str(port),
                "--metrics-host",
                "127.0.0.1",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"rspp: error: --metrics-port {port}: cannot listen"), lines
    assert "Traceback" not in done.stderr
