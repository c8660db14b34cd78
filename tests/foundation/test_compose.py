"""docker-compose.yml stays valid: Kafka in KRaft mode, a processor, a demo producer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _compose_client() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        if subprocess.run([*cmd, "version"], capture_output=True, check=False).returncode == 0:
            return cmd
    return None


def test_compose_file_is_valid_and_complete() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert set(services) == {"kafka", "processor", "demo-producer", "prometheus"}
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["kafka"]["image"].startswith("apache/kafka:")
    # The processor runs the shipped example bundle against the in-network listener.
    run = " ".join(services["processor"]["command"])
    assert "rspp run" in run and "simple_livekit_voice_v1/bundle.json" in run
    assert Path(COMPOSE.parent, "pipelines/examples/simple_livekit_voice_v1/bundle.json").is_file()
    assert services["processor"]["environment"]["RSPP_BOOTSTRAP"] == "kafka:19092"
    assert "INTERNAL://kafka:19092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    # Prometheus scrapes the processor's --metrics-port with the shipped config.
    assert "--metrics-port 9464" in run
    config_mount = services["prometheus"]["volumes"][0].split(":")[0]
    scrape = yaml.safe_load(Path(COMPOSE.parent, config_mount).read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["processor:9464"]
    client = _compose_client()
    if client is not None:  # where a Compose client exists, it must accept the file too
        proc = subprocess.run([*client, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
