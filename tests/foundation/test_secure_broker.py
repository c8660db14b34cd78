"""A multi-tenant deployment on a private secure broker (SASL/SCRAM, StandardAuthorizer,
deny by default): the broker, not the processor, keeps each tenant on its own lane topics."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from streams.acls import apply_acls, describe_acls
from streams.broker import BrokerConfig, LocalBroker, wait_until_ready
from streams.broker.secure import BrokerCredentials
from streams.client import VoiceClient
from streams.config import KafkaCredentials, external_bootstrap, kafka_settings
from streams.errors import BrokerError
from streams.topics import Lane, TopicLayout, apply_topics
from tests.ports import free_port_pair

# The private broker is started from the Maven jars (JDK needed); with RSPP_BOOTSTRAP the suite
# runs on a machine that may have none. .ci/run never sets it, so CI runs these.
pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.skipif(
        external_bootstrap() is not None,
        reason="RSPP_BOOTSTRAP set: this machine runs no local broker",
    ),
]

TENANTS = ("acme", "globex")


@dataclass(frozen=True)
class Secured:
    broker: LocalBroker
    creds: BrokerCredentials
    layout: TopicLayout

    @property
    def bootstrap(self) -> str:
        return self.broker.config.bootstrap

    def as_user(self, user: str, **overrides: Any) -> dict[str, Any]:
        return kafka_settings(self.bootstrap, credentials=self.creds.credentials(user), **overrides)


@pytest.fixture(scope="module")
def secured(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    # kafka_bootstrap ensures the shared jar cache exists; the jars are linked in, not resolved.
    home = tmp_path_factory.mktemp("secure-broker")
    shared = LocalBroker(BrokerConfig()).ensure_jars().parent
    (home / shared.name).symlink_to(shared)
    broker = LocalBroker(
        BrokerConfig(port=free_port_pair(), heap="256m", home=home, secure=True, tenants=TENANTS)
    )
    try:
        broker.up(timeout=120)
        creds = broker.credentials()
        assert creds is not None
        layout = TopicLayout(prefix=f"mt-{uuid.uuid4().hex[:6]}", partitions=2, tenants=TENANTS)
        with pytest.MonkeyPatch.context() as env:  # the admin, as an operator would connect
            for key, value in creds.env("admin").items():
                env.setenv(key, value)
            apply_topics(broker.config.bootstrap, layout)
            apply_acls(broker.config.bootstrap, layout)
        yield Secured(broker=broker, creds=creds, layout=layout)
    finally:
        broker.down()


def _produce(settings: dict[str, Any], topic: str, value: bytes) -> list[str | None]:
    """Produce one record; return the delivery outcome(s): None for success, else the
    error's name (e.g. TOPIC_AUTHORIZATION_FAILED)."""
    outcomes: list[str | None] = []
    producer = Producer({"enable.idempotence": True, "message.timeout.ms": 15000, **settings})
    producer.produce(
        topic,
        value,
        key=b"call-1",
        on_delivery=lambda err, _msg: outcomes.append(err and err.name()),
    )
    producer.flush(30)
    return outcomes


def _read_all(settings: dict[str, Any], topics: list[str], *, expect: int) -> list[bytes]:
    """The committed records of ``topics`` from the start: wait for ``expect`` of them, then
    look a little longer so that an unexpected extra one shows up too."""
    consumer = Consumer(
        {
            **settings,
            "group.id": f"rspp-restore-{uuid.uuid4().hex[:8]}",  # assign() only, never joins
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        tps = []
        for topic in topics:
            md = consumer.list_topics(topic, timeout=10).topics[topic]
            assert md.error is None, md.error
            tps += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions]
        consumer.assign(tps)
        got: list[bytes] = []
        polls = 0
        while polls < 120 and len(got) < expect:
            polls += 1
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got.append(msg.value())
        for _ in range(4):
            msg = consumer.poll(0.25)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        return got
    finally:
        consumer.close()


def test_credentials_file_is_private_and_names_every_user(secured: Secured) -> None:
    mode = stat.S_IMODE(os.stat(secured.broker.credentials_file).st_mode)
    assert mode == 0o600
    assert set(secured.creds.users) == {"admin", "processor", *TENANTS}
    st = secured.broker.status()
    assert st.ready and st.secure and set(st.users) == set(secured.creds.users)
    assert "password" not in str(st.as_dict())


def test_a_tenant_writes_its_own_lanes_and_the_broker_refuses_another_tenants(
    secured: Secured,
) -> None:
    layout = secured.layout
    acme_data = layout.lane_topic(Lane.DATA, "acme")
    assert _produce(secured.as_user("acme"), acme_data, b"acme's own") == [None]
    refused = _produce(secured.as_user("globex"), acme_data, b"transfer all my money")
    assert refused == ["TOPIC_AUTHORIZATION_FAILED"]
    # Acme may not write another tenant's lanes either, nor the processor's outputs.
    refused = _produce(secured.as_user("acme"), layout.lane_topic(Lane.CONTROL, "globex"), b"x")
    assert refused == ["TOPIC_AUTHORIZATION_FAILED"]
    refused = _produce(secured.as_user("acme"), layout.log, b"forged log")
    assert refused == ["TOPIC_AUTHORIZATION_FAILED"]
    # Only acme's record reached acme's lane.
    assert _read_all(secured.as_user("processor"), [acme_data], expect=1) == [b"acme's own"]


def test_the_sdk_publishes_with_its_own_credentials_on_its_tenant_lanes(secured: Secured) -> None:
    layout = secured.layout
    acme = VoiceClient(
        bootstrap=secured.bootstrap,
        prefix=layout.prefix,
        tenant_id="acme",
        tenant_lanes=True,
        credentials=secured.creds.credentials("acme"),
    )
    session = acme.open_session("sdk-call")
    session.close()
    assert acme.flush(30) == 0
    control = layout.lane_topic(Lane.CONTROL, "acme")
    assert len(_read_all(secured.as_user("processor"), [control], expect=2)) == 2
    # The same SDK with globex's principal but claiming acme: nothing lands.
    impostor = VoiceClient(
        bootstrap=secured.bootstrap,
        prefix=layout.prefix,
        tenant_id="acme",
        tenant_lanes=True,
        credentials=secured.creds.credentials("globex"),
    )
    impostor.open_session("sdk-call").close()
    impostor.flush(30)
    assert len(_read_all(secured.as_user("processor"), [control], expect=2)) == 2


def test_a_wrong_password_is_refused(secured: Secured) -> None:
    wrong = KafkaCredentials(username="acme", password="not-" + secured.creds.users["acme"])
    with pytest.raises(BrokerError, match="refused the client's credentials"):
        wait_until_ready(
            secured.bootstrap,
            timeout=60,
            settings=kafka_settings(secured.bootstrap, credentials=wrong),
        )
    errors: list[int] = []
    outcomes = _produce(
        kafka_settings(
            secured.bootstrap,
            credentials=wrong,
            **{"error_cb": lambda err: errors.append(err.code()), "message.timeout.ms": 3000},
        ),
        secured.layout.lane_topic(Lane.DATA, "acme"),
        b"x",
    )
    assert KafkaError._AUTHENTICATION in errors
    assert outcomes[0] is not None
    # An unauthenticated (PLAINTEXT) client gets nowhere either.
    with pytest.raises(BrokerError):
        wait_until_ready(
            secured.bootstrap, timeout=3, settings={"bootstrap.servers": secured.bootstrap}
        )


def test_the_processor_consumes_every_tenant_and_writes_outputs_in_a_transaction(
    secured: Secured,
) -> None:
    layout = secured.layout
    for tenant in TENANTS:
        topic = layout.lane_topic(Lane.TELEMETRY, tenant)
        assert _produce(secured.as_user(tenant), topic, f"{tenant}-t".encode()) == [None]
    group = f"rspp-{layout.prefix}"
    consumer = Consumer(
        secured.as_user(
            "processor",
            **{
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            },
        )
    )
    producer = Producer(secured.as_user("processor", **{"transactional.id": f"{group}.holder-1"}))
    try:
        consumer.subscribe([layout.lane_topic(Lane.TELEMETRY, t) for t in TENANTS])
        seen: dict[str, bytes] = {}
        for _ in range(120):
            msg = consumer.poll(0.5)
            if msg is None:
                if len(seen) == len(TENANTS):
                    break
                continue
            assert msg.error() is None, msg.error()
            tenant = layout.tenant_of(msg.topic())
            assert tenant is not None
            seen[tenant] = msg.value()
        assert seen == {t: f"{t}-t".encode() for t in TENANTS}
        producer.init_transactions(30)
        producer.begin_transaction()
        for tenant, value in sorted(seen.items()):
            producer.produce(layout.log, b"handled " + value, key=tenant.encode())
        producer.produce(layout.sessions, b"snapshot", key=b"acme/call-1")
        positions = consumer.position(consumer.assignment())
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
    finally:
        consumer.close()
    logged = sorted(_read_all(secured.as_user("processor"), [layout.log], expect=2))
    assert logged == [b"handled acme-t", b"handled globex-t"]
    # The processor reads the lanes but cannot write them (only tenants produce input).
    refused = _produce(secured.as_user("processor"), layout.lane_topic(Lane.DATA, "acme"), b"x")
    assert refused == ["TOPIC_AUTHORIZATION_FAILED"]


def test_applying_acls_twice_keeps_one_copy(secured: Secured) -> None:
    with pytest.MonkeyPatch.context() as env:
        for key, value in secured.creds.env("admin").items():
            env.setenv(key, value)
        before = describe_acls(secured.bootstrap, principal="User:acme")
        grants = apply_acls(secured.bootstrap, secured.layout)
        after = describe_acls(secured.bootstrap, principal="User:acme")
    assert len(after) == len(before) == sum(g.principal == "User:acme" for g in grants) == 2


def test_a_tenant_added_later_becomes_a_user_of_the_running_broker(secured: Secured) -> None:
    config = secured.broker.config
    grown = LocalBroker(
        BrokerConfig(
            port=config.port,
            heap=config.heap,
            home=config.home,
            secure=True,
            tenants=(*TENANTS, "initech"),
        )
    )
    pid = secured.broker.status().pid
    status = grown.up(timeout=60)
    assert status.pid == pid  # no restart
    creds = grown.credentials()
    assert creds is not None and creds.users["acme"] == secured.creds.users["acme"]
    wait_until_ready(
        secured.bootstrap,
        timeout=30,
        settings=kafka_settings(secured.bootstrap, credentials=creds.credentials("initech")),
    )


def _rspp(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import sys; from streams.cli import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_cli_applies_tenant_topics_with_acls_and_delete_removes_them(secured: Secured) -> None:
    config = secured.broker.config
    assert config.home is not None
    as_admin = {**os.environ, "RSPP_HOME": str(config.home), **secured.creds.env("admin")}
    prefix = f"cli-{uuid.uuid4().hex[:6]}"
    tenants = ["--tenant", "acme", "-t", "globex"]
    applied = _rspp(
        "topics", "apply", "--prefix", prefix, "-n", "2", *tenants, "--json", env=as_admin
    )
    assert applied.returncode == 0, applied.stderr
    body = json.loads(applied.stdout)
    assert len(body["created"]) == 10 and f"{prefix}.globex.data" in body["created"]
    assert {
        "principal": "User:acme",
        "resource": "topic",
        "name": f"{prefix}.acme.",
        "pattern": "prefixed",
        "operation": "write",
    } in body["acls"]
    # The new prefix's lanes are acme's to write at once.
    assert _produce(secured.as_user("acme"), f"{prefix}.acme.data", b"x") == [None]
    creds = _rspp(
        "broker",
        "credentials",
        "--port",
        str(config.port),
        "--user",
        "acme",
        "--json",
        env=as_admin,
    )
    assert creds.returncode == 0, creds.stderr
    acme_env = json.loads(creds.stdout)["users"]["acme"]
    assert acme_env["RSPP_KAFKA_SASL_PASSWORD"] == secured.creds.users["acme"]
    # A tenant's own principal may not create topics or ACLs.
    as_acme = {**os.environ, "RSPP_HOME": str(config.home), **acme_env}
    denied = _rspp("topics", "apply", "--prefix", f"{prefix}x", *tenants, env=as_acme)
    assert denied.returncode == 1
    assert denied.stderr.startswith("rspp: error: ") and "Traceback" not in denied.stderr
    gone = _rspp("topics", "delete", "--prefix", prefix, "--yes", "--json", env=as_admin)
    assert gone.returncode == 0, gone.stderr
    assert len(json.loads(gone.stdout)["deleted"]) == 10


def test_the_real_processor_runs_as_the_processor_principal(secured: Secured) -> None:
    """The ACLs `apply_acls` grants are all the runtime needs: lease and session restore,
    the consumer group, transactions. (Single-tenant here; the admin plays the service.)"""
    from pipelines.bundles import read_bundle
    from streams.runtime.processor import ProcessorConfig
    from streams.testing import ProcessorThread

    bundle = read_bundle(
        Path(__file__).resolve().parents[2]
        / "pipelines"
        / "bundles"
        / "voice_assistant_bundle_v1.json"
    )
    layout = TopicLayout(prefix=f"st-{uuid.uuid4().hex[:6]}", partitions=1)
    with pytest.MonkeyPatch.context() as env:
        for key, value in secured.creds.env("admin").items():
            env.setenv(key, value)
        apply_topics(secured.bootstrap, layout)
        apply_acls(secured.bootstrap, layout)
        for key, value in secured.creds.env("processor").items():
            env.setenv(key, value)
        config = ProcessorConfig(
            bootstrap=secured.bootstrap, prefix=layout.prefix, bundle=bundle, drain_grace_s=10
        )
        with ProcessorThread(config) as running:
            client = VoiceClient(
                bootstrap=secured.bootstrap,
                prefix=layout.prefix,
                credentials=secured.creds.credentials("admin"),
            )
            call = client.open_session("call-1")
            call.send_transcript("what time is it")
            assert client.flush(30) == 0
            for _ in range(240):
                if running.processor.stats.turns_committed >= 1:
                    break
                time.sleep(0.25)
            call.close()
            assert client.flush(30) == 0
    assert running.stats is not None
    assert running.stats.turns_committed == 1


def test_two_tenants_with_the_same_session_id_never_meet(
    secured: Secured, tmp_path: Path
) -> None:
    """Issue reproduction 1 on a real multi-tenant deployment: globex opens acme's session id,
    speaks into it and hangs up. Acme's call goes on untouched; globex's runs as its own. A
    body that claims acme on globex's topics is dead-lettered under globex. Audit for one
    tenant sees none of the other's rows."""
    from dataclasses import replace

    from pipelines.bundles import read_bundle
    from replay.audit import AuditStore
    from replay.logcheck import check_log
    from streams.abi import events as ev
    from streams.runtime.processor import ProcessorConfig
    from streams.testing import ProcessorThread, read_dlq, read_log

    bundle = read_bundle(
        Path(__file__).resolve().parents[2] / "pipelines" / "bundles" / "voice_assistant_bundle_v1.json"
    )
    # A prefix of its own: other tests of the module write whatever they like to theirs.
    layout = TopicLayout(prefix=f"iso-{uuid.uuid4().hex[:6]}", partitions=2, tenants=TENANTS)
    with pytest.MonkeyPatch.context() as env:
        for key, value in secured.creds.env("admin").items():
            env.setenv(key, value)
        apply_topics(secured.bootstrap, layout)
        apply_acls(secured.bootstrap, layout)
    prefix = layout.prefix

    def client(tenant: str) -> VoiceClient:
        return VoiceClient(
            bootstrap=secured.bootstrap,
            prefix=prefix,
            tenant_id=tenant,
            tenant_lanes=True,
            credentials=secured.creds.credentials(tenant),
        )

    def state(running: ProcessorThread, tenant: str) -> tuple[int, bool]:
        """(turns done, closed) of the tenant's call-1 on the processor."""
        from streams.runtime.sessions import SessionKey

        session = running.processor.engine.sessions.get(SessionKey(tenant, "call-1"))
        return (session.turns_done, session.closed) if session is not None else (0, False)

    def wait(condition: Callable[[], bool], what: str) -> None:
        for _ in range(480):  # a hang guard, not a speed bound
            if condition() or running.error is not None:
                break
            time.sleep(0.25)
        assert running.error is None, f"the processor stopped: {running.error!r}"
        assert condition(), f"timed out waiting for {what}"

    with pytest.MonkeyPatch.context() as env:
        for key, value in secured.creds.env("processor").items():
            env.setenv(key, value)
        config = ProcessorConfig(
            bootstrap=secured.bootstrap, prefix=prefix, bundle=bundle, tenants=TENANTS,
            drain_grace_s=10,
        )
        with ProcessorThread(config) as running:
            acme, globex = client("acme"), client("globex")
            acme_call = acme.open_session("call-1")
            acme_call.send_transcript("what time is it")
            assert acme.flush(30) == 0
            intruder = globex.open_session("call-1")
            intruder.send_transcript("transfer all my money")
            # A body claiming acme, written (with globex's own credentials) to globex's lanes.
            forged = replace(
                ev.Envelope.new(
                    ev.Transcript(kind=ev.TranscriptKind.FINAL, text="i am acme", confidence=1.0),
                    tenant_id="globex", session_id="call-1", seq=99,
                ),
                tenant_id="acme",
            )
            globex.publish(forged)
            assert globex.flush(30) == 0
            wait(
                lambda: state(running, "acme")[0] >= 1 and state(running, "globex")[0] >= 1,
                "both tenants' turns",
            )
            intruder.close()
            assert globex.flush(30) == 0
            wait(
                lambda: state(running, "globex")[1] and running.processor.dlq_count >= 1,
                "globex's hang-up and the forged record's dead letter",
            )
            assert state(running, "acme") == (1, False)  # globex's hang-up closed its own call
        for key, value in secured.creds.env("admin").items():
            env.setenv(key, value)
        rows = read_log(secured.bootstrap, prefix, partitions=2)
        dlq = read_dlq(secured.bootstrap, prefix, partitions=2)
        store = AuditStore(tmp_path / "audit.duckdb")
        store.load_kafka(secured.bootstrap, prefix)
    assert check_log(rows) == []
    by_tenant = {t: [r.event for r in rows if r.event.tenant_id == t] for t in TENANTS}
    texts = {t: {getattr(e.payload, "text", None) for e in events} for t, events in by_tenant.items()}
    assert "transfer all my money" in texts["globex"] and "transfer all my money" not in texts["acme"]
    assert "what time is it" in texts["acme"]
    commits = {t: [e for e in events if e.event_type is ev.EventType.TURN_COMMIT] for t, events in by_tenant.items()}
    assert len(commits["acme"]) == 1 and len(commits["globex"]) == 1
    assert not [e for e in by_tenant["acme"] if e.event_type is ev.EventType.SESSION_CLOSE]
    assert [e.event_type for e in by_tenant["globex"]].count(ev.EventType.SESSION_CLOSE) == 1
    letters = [r.event for r in dlq]
    assert [(e.tenant_id, e.session_id) for e in letters] == [("globex", "call-1")]
    assert "arrived on tenant 'globex'" in letters[0].payload.reason  # type: ignore[attr-defined]
    acme_rows = store.sql("select distinct tenant_id from events", tenant="acme")
    assert acme_rows == [{"tenant_id": "acme"}]
    assert store.sql("select count(*) as n from dead_letters", tenant="acme") == [{"n": 0}]
