"""A real LiveKit SFU for the bridge tests: ``livekit-server --dev`` on free loopback ports.

The binary comes from ``RSPP_LIVEKIT_SERVER``, else ``.ci/livekit.sh`` (which builds
v1.8.4 from the Go module proxy once into ``$RSPP_HOME``). Readiness is its HTTP
port answering; the server is stopped in the fixture's ``finally``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]


def _free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _livekit_binary() -> str:
    explicit = os.environ.get("RSPP_LIVEKIT_SERVER")
    if explicit:
        return explicit
    built = subprocess.run(
        ["bash", str(_REPO / ".ci" / "livekit.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if built.returncode != 0:
        pytest.fail(f".ci/livekit.sh could not provide livekit-server: {built.stderr.strip()}")
    return built.stdout.strip().splitlines()[-1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def livekit_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ws://127.0.0.1:<port>`` of a running dev-mode server (API key devkey / secret)."""
    http, tcp, udp = _free_port(), _free_port(), _free_port(socket.SOCK_DGRAM)
    config = {  # JSON is YAML; ICE on loopback only, one TCP and one UDP port
        "port": http,
        "rtc": {
            "tcp_port": tcp,
            "udp_port": udp,
            "use_external_ip": False,
            "enable_loopback_candidate": True,
        },
        "logging": {"level": "info"},
    }
    log_path = tmp_path_factory.mktemp("livekit") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                _livekit_binary(),
                "--dev",
                "--bind",
                "127.0.0.1",
                "--config-body",
                json.dumps(config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not _ready(f"http://127.0.0.1:{http}/"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"livekit-server did not start (exit {process.poll()}): {tail}")
            time.sleep(0.05)
        yield f"ws://127.0.0.1:{http}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
