"""``rspp top`` as an operator runs it: live until Ctrl-C (exit 0), one-line errors."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.topics import TopicLayout, apply_topics
from tests.runtime.procs import REPO, wait_for

pytestmark = pytest.mark.kafka


def _rspp(*args: str, out: Path, err: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as o, err.open("wb") as e:
        return subprocess.Popen(
            [sys.executable, "-c", "from streams.cli import main; main()", *args],
            stdout=o,
            stderr=e,
            cwd=REPO,
        )


def test_live_view_refreshes_until_ctrl_c(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=2))
    err = tmp_path / "err"
    # A terminal, as an operator has: rich draws live frames only on one.
    master, slave = pty.openpty()
    with err.open("wb") as e:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from streams.cli import main; main()",
                "top",
                "--prefix",
                prefix,
                "--bootstrap",
                kafka_bootstrap,
                "--interval",
                "0.2",
            ],
            stdin=slave,
            stdout=slave,
            stderr=e,
            cwd=REPO,
        )
    os.close(slave)
    screen = bytearray()

    def drawn_twice() -> bool:
        while select.select([master], [], [], 0.05)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return True  # the terminal closed: the process is gone
            if not chunk:
                return True
            screen.extend(chunk)
        return screen.count(b"consumer lag") >= 2 or proc.poll() is not None

    try:
        wait_for(drawn_twice, 60, "rspp top to draw twice")
        assert proc.poll() is None, err.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
    assert "Traceback" not in err.read_text()
    assert f"{prefix}.data".encode() in screen


def test_a_missing_deployment_is_one_line(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    out, err = tmp_path / "out", tmp_path / "err"
    proc = _rspp(
        "top",
        "--prefix",
        unique_prefix(),
        "--bootstrap",
        kafka_bootstrap,
        "--once",
        out=out,
        err=err,
    )
    assert proc.wait(60) == 1
    lines = err.read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rspp: error: --prefix "), lines
    bad = _rspp("top", "--prefix", "p", "--json", out=out, err=err)
    assert bad.wait(60) == 2
