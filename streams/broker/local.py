"""A single-node Apache Kafka broker in KRaft mode, assembled from Maven Central jars.

No Docker engine is needed: Maven resolves ``kafka_2.13`` and its runtime
dependencies into a cache directory, the broker runs with ``java -cp``, and
readiness is an AdminClient metadata call (never a log grep).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from streams.broker.secure import (
    BrokerCredentials,
    ensure_credentials,
    load_credentials,
    scram_format_args,
    secure_properties,
    sync_scram_users,
    write_private,
)
from streams.config import kafka_settings, kafka_version, rspp_home
from streams.errors import BrokerError

__all__ = ["CROWDED_PARTITIONS", "BrokerConfig", "BrokerStatus", "LocalBroker", "wait_until_ready"]

_MAIN_CLASS = "kafka.Kafka"
# Every partition keeps at least one segment file open; past ~20k (a common open-files
# limit) the broker fails its log dir with "Too many open files" and halts. Warn well before.
CROWDED_PARTITIONS = 8000


@dataclass(frozen=True, kw_only=True)
class BrokerConfig:
    """Where and how the local broker runs."""

    version: str = field(default_factory=kafka_version)
    port: int = 9092
    controller_port: int | None = None  # default: port + 1
    home: Path | None = None  # default: $RSPP_HOME or ~/.cache/rspp
    heap: str = "768m"
    # Secure mode (`rspp broker up --secure`): SASL/SCRAM, ACLs enforced, deny by default.
    secure: bool = False
    tenants: tuple[str, ...] = ()  # one SCRAM user each (secure mode)
    processor_user: str = "processor"

    @property
    def root(self) -> Path:
        return self.home if self.home is not None else rspp_home()

    @property
    def jars_dir(self) -> Path:
        return self.root / f"kafka-{self.version}" / "libs"

    @property
    def state_dir(self) -> Path:
        return self.root / f"broker-{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def effective_controller_port(self) -> int:
        return self.controller_port if self.controller_port is not None else self.port + 1


@dataclass(frozen=True, kw_only=True)
class BrokerStatus:
    """What ``rspp broker status`` reports."""

    running: bool
    ready: bool
    bootstrap: str
    version: str
    pid: int | None
    state_dir: str
    log_file: str
    partitions_on_disk: int
    secure: bool = False
    users: tuple[str, ...] = ()  # SCRAM users of a secure broker (names only)

    @property
    def crowded(self) -> bool:
        """True when the partitions kept on disk approach what one broker's file handles allow."""
        return self.partitions_on_disk >= CROWDED_PARTITIONS

    def as_dict(self) -> dict[str, object]:
        return {
            "running": self.running,
            "ready": self.ready,
            "bootstrap": self.bootstrap,
            "version": self.version,
            "pid": self.pid,
            "state_dir": self.state_dir,
            "log_file": self.log_file,
            "partitions_on_disk": self.partitions_on_disk,
            "secure": self.secure,
            "security_protocol": "SASL_PLAINTEXT" if self.secure else "PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-256" if self.secure else None,
            "users": list(self.users),
        }


def wait_until_ready(
    bootstrap: str,
    *,
    timeout: float,
    alive: object = None,
    settings: dict[str, Any] | None = None,
) -> None:
    """Block until an AdminClient metadata call lists at least one broker.

    ``alive`` is an optional zero-argument callable: when it returns False the
    wait stops early (the process died), so the caller can say why. ``settings``
    are the client's (default :func:`streams.config.kafka_settings`). Refused
    credentials end the wait at once, unless ``alive`` says a broker is starting.
    """
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("rspp.kafka.admin")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    refused: list[str] = []

    def on_error(err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            refused.append(err.str())

    conf: dict[str, Any] = {
        **(settings if settings is not None else kafka_settings(bootstrap)),
        "socket.connection.setup.timeout.ms": 1000,
        "logger": quiet,  # silences librdkafka's connection-refused lines while we wait
        "error_cb": on_error,
    }
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if callable(alive) and not alive():
            raise BrokerError(f"broker process exited before {bootstrap} became ready")
        admin.poll(0)  # serves error_cb
        if refused:
            last_error = refused[-1]
            if not callable(alive):
                raise BrokerError(f"{bootstrap} refused the client's credentials: {last_error}")
        try:
            metadata = admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            if metadata.brokers:
                return
            last_error = "metadata listed no brokers"
        except Exception as exc:  # confluent_kafka raises KafkaException with varying codes
            last_error = str(exc)
        time.sleep(0.2)
    raise BrokerError(f"broker at {bootstrap} not ready after {timeout:.0f}s ({last_error})")


class LocalBroker:
    """Manage one local KRaft broker: resolve jars, format storage, start, stop, inspect."""

    def __init__(self, config: BrokerConfig | None = None) -> None:
        self.config = config if config is not None else BrokerConfig()

    # -- paths -----------------------------------------------------------------
    @property
    def _pid_file(self) -> Path:
        return self.config.state_dir / "broker.pid"

    @property
    def _properties_file(self) -> Path:
        return self.config.state_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.config.state_dir / "logs" / "server.log"

    @property
    def _stdout_file(self) -> Path:
        return self.config.state_dir / "logs" / "stdout.log"

    @property
    def _data_dir(self) -> Path:
        return self.config.state_dir / "data"

    # -- jars ------------------------------------------------------------------
    def ensure_jars(self) -> Path:
        """Resolve the broker's jars with Maven once; later calls reuse the cache."""
        jars = self.config.jars_dir
        marker = jars.parent / ".complete"
        if marker.exists() and any(jars.glob("kafka_2.13-*.jar")):
            return jars
        _require_tool(
            "java", "a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
        )
        mvn = _require_tool("mvn", "Apache Maven (Debian: apt-get install maven)")
        jars.mkdir(parents=True, exist_ok=True)
        pom = jars.parent / "pom.xml"
        pom.write_bytes(resources.files("streams.broker").joinpath("pom.xml").read_bytes())
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            f"-Dkafka.version={self.config.version}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={jars}",
            "-DincludeScope=runtime",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not any(jars.glob("kafka_2.13-*.jar")):
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise BrokerError(
                f"mvn could not resolve org.apache.kafka:kafka_2.13:{self.config.version} "
                f"from Maven Central: {tail[0]}"
            )
        marker.write_text(self.config.version)
        return jars

    # -- lifecycle -------------------------------------------------------------
    def status(self) -> BrokerStatus:
        pid = self._live_pid()
        ready = False
        creds = self.credentials()
        if pid is not None:
            try:
                wait_until_ready(
                    self.config.bootstrap, timeout=2.0, settings=self.client_settings()
                )
                ready = True
            except BrokerError:
                ready = False
        return BrokerStatus(
            running=pid is not None,
            ready=ready,
            bootstrap=self.config.bootstrap,
            version=self.config.version,
            pid=pid,
            state_dir=str(self.config.state_dir),
            log_file=str(self.log_file),
            partitions_on_disk=self.partitions_on_disk(),
            secure=creds is not None,
            users=tuple(sorted(creds.users)) if creds is not None else (),
        )

    # -- secure mode -----------------------------------------------------------
    @property
    def credentials_file(self) -> Path:
        return self.config.state_dir / "credentials.json"

    def credentials(self) -> BrokerCredentials | None:
        """The users and passwords of a broker started with ``secure``; None for a plain one."""
        return load_credentials(self.credentials_file)

    def client_settings(self) -> dict[str, Any]:
        """Client settings for this broker: PLAINTEXT, or the ``admin`` super user when secure."""
        creds = self.credentials()
        if creds is None:
            return {"bootstrap.servers": self.config.bootstrap}
        return {
            "bootstrap.servers": self.config.bootstrap,
            **creds.credentials("admin").settings(),
        }

    def _check_mode(self) -> None:
        """Refuse to flip a formatted broker between plain and secure without ``fresh``."""
        if not (self._data_dir / "meta.properties").exists():
            return
        was_secure = self.credentials_file.exists()
        if was_secure != self.config.secure:
            if was_secure:
                raise BrokerError(
                    f"the broker in {self.config.state_dir} is secure: pass --secure, or "
                    "`rspp broker up --fresh` starts it plain (discarding its topics)"
                )
            raise BrokerError(
                f"the broker in {self.config.state_dir} is plain, not secure; "
                "`rspp broker up --secure --fresh` starts it secure (discarding its topics)"
            )

    def partitions_on_disk(self) -> int:
        """Topic partitions the broker keeps in its data dir (Kafka's internal ones included)."""
        try:
            entries = list(self._data_dir.iterdir())
        except FileNotFoundError:
            return 0
        return sum(
            1
            for e in entries
            if e.is_dir() and e.name.rpartition("-")[2].isdigit() and "__cluster_metadata" not in e.name
        )

    def up(self, *, timeout: float = 60.0, fresh: bool = False) -> BrokerStatus:
        """Start the broker unless ours is already running; wait until it answers.

        ``fresh`` stops a running broker first and discards every topic (a clean
        cluster, as CI wants); jars and the cluster id are kept.
        """
        if fresh:
            self.down()
            shutil.rmtree(self._data_dir, ignore_errors=True)
            if not self.config.secure:
                self.credentials_file.unlink(missing_ok=True)
        self._check_mode()
        creds: BrokerCredentials | None = None
        if self.config.secure:
            creds = ensure_credentials(
                self.credentials_file,
                bootstrap=self.config.bootstrap,
                tenants=self.config.tenants,
                processor=self.config.processor_user,
            )
        pid = self._live_pid()
        if pid is None:
            jars = self.ensure_jars()
            self._write_properties()
            self._format_storage(jars)
            if _port_busy(self.config.port):
                raise BrokerError(
                    f"port {self.config.port} is in use by another process; "
                    "pick another with --port or stop that process"
                )
            pid = self._spawn(jars)
        settings = self.client_settings()
        try:
            wait_until_ready(
                self.config.bootstrap,
                timeout=timeout,
                alive=lambda: _pid_alive(pid),
                settings=settings,
            )
        except BrokerError as exc:
            raise BrokerError(f"{exc}: {self._last_failure()}") from None
        if creds is not None:
            # Tenants named after the broker was formatted become users now.
            sync_scram_users(settings, creds, timeout=timeout)
        return self.status()

    def _last_failure(self) -> str:
        """The JVM's last cause line (e.g. a port in use), else where to look."""
        with contextlib.suppress(OSError), self.log_file.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 65536))
            tail = log.read().decode(errors="replace").splitlines()
            causes = [line.strip() for line in tail if "Exception:" in line]
            if causes:
                return causes[-1]
        return f"see {self.log_file}"

    def down(self, *, timeout: float = 30.0) -> bool:
        """Stop the broker this project started (only that pid). Returns False if none ran."""
        pid = self._live_pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.1)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.05)
        self._pid_file.unlink(missing_ok=True)
        return True

    def logs(self, *, lines: int = 50) -> list[str]:
        """The last ``lines`` lines of the broker's server log."""
        if not self.log_file.exists():
            return []
        with self.log_file.open("r", encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n") for line in fh.readlines()[-lines:]]

    # -- internals -------------------------------------------------------------
    def _live_pid(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _pid_alive(pid):
            return None
        # Only claim the pid if it is still our java process (pids get reused).
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        ours = _MAIN_CLASS.encode() in cmdline and str(self._properties_file).encode() in cmdline
        return pid if ours else None

    def _write_properties(self) -> None:
        cfg = self.config
        self._data_dir.mkdir(parents=True, exist_ok=True)
        (cfg.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        ctl = cfg.effective_controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{ctl}",
            "listeners": f"PLAINTEXT://127.0.0.1:{cfg.port},CONTROLLER://127.0.0.1:{ctl}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{cfg.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # A single developer box: rebalance at once, keep segments small.
            "group.initial.rebalance.delay.ms": "0",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "auto.create.topics.enable": "false",
        }
        creds = self.credentials() if cfg.secure else None
        if creds is not None:
            props.update(secure_properties(creds, port=cfg.port, controller_port=ctl))
        body = "# written by `rspp broker up`\n" + "".join(f"{k}={v}\n" for k, v in props.items())
        if creds is not None:
            write_private(self._properties_file, body)  # holds the admin's password
        else:
            self._properties_file.write_text(body)

    def _format_storage(self, jars: Path) -> None:
        if (self._data_dir / "meta.properties").exists():
            return
        cluster_file = self.config.state_dir / "cluster.id"
        if not cluster_file.exists():
            # A Kafka cluster id is a url-safe base64 UUID without padding.
            import base64

            raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            cluster_file.write_text(raw)
        cmd = [
            "java",
            *self._jvm_logging_args(),
            "-cp",
            f"{jars}/*",
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            # One token: a url-safe base64 id may start with '-', which argparse would
            # take for an option.
            f"--cluster-id={cluster_file.read_text().strip()}",
            "-c",
            str(self._properties_file),
        ]
        creds = self.credentials() if self.config.secure else None
        if creds is not None:
            cmd += scram_format_args(creds)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise BrokerError(f"formatting KRaft storage in {self._data_dir} failed: {tail[0]}")

    def _jvm_logging_args(self) -> list[str]:
        log4j = self.config.state_dir / "log4j.properties"
        log4j.write_bytes(
            resources.files("streams.broker").joinpath("log4j.properties").read_bytes()
        )
        return [f"-Dlog4j.configuration=file:{log4j}", f"-Drspp.broker.log={self.log_file}"]

    def _spawn(self, jars: Path) -> int:
        cmd = [
            "java",
            f"-Xms{self.config.heap}",
            f"-Xmx{self.config.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            *self._jvm_logging_args(),
            "-cp",
            f"{jars}/*",
            _MAIN_CLASS,
            str(self._properties_file),
        ]
        with self._stdout_file.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives `rspp broker up`; `down` stops it by pid
            )
        self._pid_file.write_text(str(proc.pid))
        return proc.pid


def _require_tool(name: str, what: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(f"`{name}` not found on PATH: install {what}")
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as dead; reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] != "Z":
        return True
    # A zombie. If it is our child, reap it: a JVM's main thread turns zombie before its other
    # threads finish exiting, and it cannot be reaped until they have, so retry for a while.
    with contextlib.suppress(ChildProcessError):
        for _ in range(100):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
            time.sleep(0.02)
    return False


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0
