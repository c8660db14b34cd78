"""Local broker management that needs no running broker."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from streams.broker import BrokerConfig, LocalBroker
from streams.broker.local import CROWDED_PARTITIONS
from streams.broker.secure import (
    ensure_credentials,
    load_credentials,
    scram_format_args,
    secure_properties,
    write_private,
)
from streams.errors import BrokerError


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


def test_a_plain_broker_state_is_not_silently_secured(tmp_path: Path) -> None:
    broker = LocalBroker(BrokerConfig(port=_free_port(), home=tmp_path, secure=True))
    data = broker.config.state_dir / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("formatted plain\n")
    with pytest.raises(BrokerError, match=r"is plain, not secure.*--secure --fresh"):
        broker.up(timeout=5)
    assert not broker.credentials_file.exists()
    # And a secure one is not silently started plain.
    write_private(broker.credentials_file, "{}")
    plain = LocalBroker(replace(broker.config, secure=False))
    with pytest.raises(BrokerError, match="is secure: pass --secure"):
        plain.up(timeout=5)


def test_secure_credentials_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "credentials.json"
    first = ensure_credentials(
        path, bootstrap="127.0.0.1:1", tenants=["acme"], processor="processor"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(first.users) == {"admin", "processor", "acme"} and first.tenants == ("acme",)
    assert len(set(first.users.values())) == 3  # one password each
    assert first.users["acme"] not in repr(first) and first.controller_password not in repr(first)
    grown = ensure_credentials(
        path, bootstrap="127.0.0.1:1", tenants=["acme", "globex"], processor="processor"
    )
    assert grown.users["acme"] == first.users["acme"]  # configured clients keep working
    assert grown.controller_password == first.controller_password
    assert load_credentials(path) == grown
    for reserved in ("admin", "processor", "controller"):
        with pytest.raises(BrokerError, match="share a name"):
            ensure_credentials(path, bootstrap="b", tenants=[reserved], processor="processor")
    with pytest.raises(BrokerError, match="invalid tenant"):
        ensure_credentials(path, bootstrap="b", tenants=["Acme"], processor="processor")


def test_secure_properties_deny_by_default_and_have_no_anonymous_super_user(tmp_path: Path) -> None:
    creds = ensure_credentials(
        tmp_path / "c.json", bootstrap="127.0.0.1:1", tenants=["acme"], processor="processor"
    )
    props = secure_properties(creds, port=1, controller_port=2)
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert "PLAINTEXT:PLAINTEXT" not in props["listener.security.protocol.map"]
    assert "ANONYMOUS" not in props["super.users"]
    args = scram_format_args(creds)
    assert args.count("--add-scram") == 3
    assert all(
        not arg.startswith("SCRAM") or arg.count(",") == 2 for arg in args
    )  # name, iterations, password: a password never adds a separator
