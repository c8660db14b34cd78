"""Shared test fixtures.

Broker tests (marker ``kafka``) get a real Apache Kafka cluster, chosen in order:
``RSPP_BOOTSTRAP`` (an external cluster), testcontainers' ``KafkaContainer``
where a Docker engine answers, or the project's local KRaft broker (started by
this fixture when it is not already running, and stopped again at the end only
if this fixture started it). Readiness is an AdminClient metadata call.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streams.broker import BrokerConfig, LocalBroker, wait_until_ready
from streams.config import external_bootstrap, local_broker_port


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=5, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A bootstrap address of a real, ready Kafka cluster."""
    external = external_bootstrap()
    if external is not None:
        wait_until_ready(external, timeout=60)
        yield external
        return
    if os.environ.get("RSPP_TEST_DOCKER", "auto") != "off" and _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            address = container.get_bootstrap_server()
            wait_until_ready(address, timeout=120)
            yield address
        return
    broker = LocalBroker(BrokerConfig(port=local_broker_port()))
    started_here = not broker.status().running
    status = broker.up(timeout=120)
    try:
        yield status.bootstrap
    finally:
        if started_here:
            broker.down()


@pytest.fixture(scope="session", autouse=True)
def _private_bundle_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One bundle store per test session (subprocesses inherit it).

    The store keeps the first digest of every name@version for good, so tests
    that run processors must not claim versions in the developer's own store
    (a rebuilt shipped bundle would then be refused there, and vice versa).
    """
    if os.environ.get("RSPP_STORE"):
        yield
        return
    os.environ["RSPP_STORE"] = str(tmp_path_factory.mktemp("bundle-store"))
    try:
        yield
    finally:
        os.environ.pop("RSPP_STORE", None)


_counter = itertools.count()


def drop_topics(bootstrap: str, starts_with: str) -> None:
    """Delete the topics a test made. Every partition holds files open on the broker, and a
    suite that leaves ~3k partitions per run halts a long-lived broker ("Too many open
    files"); on an external cluster the leftovers would be litter. Best effort: a failure
    here is reported, not raised, because it says nothing about the code under test."""
    from streams.topics import delete_topics

    try:
        delete_topics(bootstrap, starts_with=starts_with, timeout=15.0)
    except Exception as exc:  # the broker may be the thing a fault test just stopped
        warnings.warn(f"could not delete test topics {starts_with}*: {exc}", stacklevel=1)


@pytest.fixture
def unique_prefix(request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """Factory for topic prefixes / group ids that no other test uses; the test's topics are
    deleted when it ends."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    run = f"t-{base}-{uuid.uuid4().hex[:6]}-"

    def make() -> str:
        return f"{run}{next(_counter)}"

    yield make
    if "kafka_bootstrap" in request.fixturenames:
        drop_topics(request.getfixturevalue("kafka_bootstrap"), run)


@pytest.fixture(scope="session")
def demo_recording(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """One fast demo run (2 callers × every scripted utterance, barge-ins included) on the
    real runtime, shared read-only by the tests that check its log, export, replay and gates."""
    from streams.demo import DemoOptions, load_scenario, run_demo

    scenario = load_scenario()
    prefix = f"t-demo-recording-{uuid.uuid4().hex[:6]}"
    options = DemoOptions(
        sessions=2,
        turns=len(scenario.utterances),
        fast=True,
        prefix=prefix,
        out_dir=tmp_path_factory.mktemp("demo"),
    )
    yield run_demo(options, bootstrap=kafka_bootstrap, scenario=scenario)
    drop_topics(kafka_bootstrap, prefix + ".")
