"""Local broker management that needs no running broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from streams.broker import BrokerConfig, LocalBroker
from streams.broker.local import CROWDED_PARTITIONS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_properties_are_single_node_kraft(tmp_path: Path) -> None:
    broker = LocalBroker(BrokerConfig(port=29092, home=tmp_path))
    broker._write_properties()
    props = dict(
        line.split("=", 1)
        for line in (tmp_path / "broker-29092" / "server.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["log.dirs"].startswith(str(tmp_path))


def test_status_of_a_broker_never_started(tmp_path: Path) -> None:
    st = LocalBroker(BrokerConfig(port=_free_port(), home=tmp_path)).status()
    assert not st.running and not st.ready and st.pid is None


def test_partitions_on_disk_counts_topic_partitions_only(tmp_path: Path) -> None:
    broker = LocalBroker(BrokerConfig(port=_free_port(), home=tmp_path))
    data = broker.config.state_dir / "data"
    for name in ("demo.log-0", "demo.log-1", "__consumer_offsets-3", "__cluster_metadata-0",
                 "demo.dlq-0.6f1c2d-delete"):
        (data / name).mkdir(parents=True)
    (data / "meta.properties").write_text("")
    st = broker.status()
    assert st.partitions_on_disk == 3
    assert not st.crowded
    assert replace(st, partitions_on_disk=CROWDED_PARTITIONS).crowded


def test_stale_pid_file_is_not_claimed(tmp_path: Path) -> None:
    # A pid that is alive but not our java broker (this test process) must not be "ours".
    broker = LocalBroker(BrokerConfig(port=_free_port(), home=tmp_path))
    broker.config.state_dir.mkdir(parents=True)
    (broker.config.state_dir / "broker.pid").write_text(str(os.getpid()))
    assert broker.status().pid is None
    assert broker.down() is False


def _rspp(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import sys; from streams.cli import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_missing_java_is_one_line_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RSPP_BOOTSTRAP"}
    env.update(PATH=str(tmp_path), RSPP_HOME=str(tmp_path / "home"))
    proc = _rspp("broker", "up", "--port", str(_free_port()), env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("rspp: error: `java` not found on PATH: install")
    assert "Traceback" not in proc.stderr


def test_bad_prefix_cli_error_is_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, RSPP_HOME=str(tmp_path))
    proc = _rspp("topics", "apply", "--prefix", "bad prefix", "--bootstrap", "127.0.0.1:1", env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "rspp: error: invalid prefix 'bad prefix': use letters, digits, '.', '_' and '-'"
    ]
