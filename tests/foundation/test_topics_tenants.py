"""Multi-tenant topic layout and Kafka client settings: rules that need no broker."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.acls import acl_grants
from streams.config import KafkaCredentials, kafka_settings
from streams.errors import KafkaConfigError, TopicLayoutError
from streams.topics import Lane, TopicLayout, TopicRole

TENANT_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
_ROLES = {r.value for r in TopicRole}
tenant_names = st.text(alphabet=TENANT_CHARS, min_size=1, max_size=64).filter(
    lambda t: t not in _ROLES
)


def test_single_tenant_names_are_unchanged() -> None:
    layout = TopicLayout(prefix="prod.voice")
    assert not layout.multi_tenant
    assert layout.lane_topics() == ("prod.voice.control", "prod.voice.data", "prod.voice.telemetry")
    assert layout.control == layout.lane_topic(Lane.CONTROL) == "prod.voice.control"
    # Single-tenant: every tenant shares the one set of lanes, so a tenant is ignored.
    assert layout.lane_topic(Lane.DATA, "acme") == "prod.voice.data"
    assert layout.tenant_of("prod.voice.data") is None
    assert layout.lane_of("prod.voice.data") is Lane.DATA
    assert layout.lane_of("prod.voice.log") is None
    assert [name for name, _, _ in layout.topics()] == [layout.topic(r) for r in TopicRole]


def test_each_tenant_gets_its_own_lanes_and_outputs_stay_shared() -> None:
    layout = TopicLayout(prefix="p.v", tenants=("globex", "acme"))
    assert layout.multi_tenant
    assert layout.lane_topic(Lane.DATA, "acme") == "p.v.acme.data"
    assert layout.lane_topics(Lane.CONTROL) == ("p.v.acme.control", "p.v.globex.control")
    assert len(layout.lane_topics()) == 6
    assert layout.output_topics() == ("p.v.log", "p.v.leases", "p.v.sessions", "p.v.dlq")
    assert layout.log == "p.v.log" and layout.dlq == "p.v.dlq"
    assert layout.tenant_prefix("acme") == "p.v.acme."
    rows = layout.topics()
    assert len(rows) == 10 and len({name for name, _, _ in rows}) == 10
    assert ("p.v.globex.telemetry", TopicRole.TELEMETRY, "globex") in rows


@pytest.mark.parametrize("prop", ["control", "data", "telemetry"])
def test_shared_lane_properties_refuse_a_multi_tenant_layout(prop: str) -> None:
    layout = TopicLayout(prefix="p", tenants=("acme",))
    with pytest.raises(TopicLayoutError, match="per-tenant"):
        getattr(layout, prop)


def test_lane_topic_needs_a_known_tenant_when_multi_tenant() -> None:
    layout = TopicLayout(prefix="p", tenants=("acme",))
    with pytest.raises(TopicLayoutError, match="name the tenant"):
        layout.lane_topic(Lane.DATA)
    with pytest.raises(TopicLayoutError, match="unknown tenant 'globex'"):
        layout.lane_topic(Lane.DATA, "globex")
    with pytest.raises(TopicLayoutError, match="unknown tenant"):
        layout.tenant_prefix("globex")


@pytest.mark.parametrize(
    ("tenants", "match"),
    [
        (("",), "non-empty"),
        (("a" * 65,), "at most 64"),
        (("Acme",), "invalid tenant"),
        (("ac.me",), "invalid tenant"),
        (("ac me",), "invalid tenant"),
        (("acme", "acme"), "twice"),
        (("log",), "role name"),
        (("control",), "role name"),
    ],
)
def test_bad_tenant_names_are_refused(tenants: tuple[str, ...], match: str) -> None:
    with pytest.raises(TopicLayoutError, match=match):
        TopicLayout(prefix="p", tenants=tenants)


def test_topic_names_of_other_layouts_have_no_tenant() -> None:
    layout = TopicLayout(prefix="p", tenants=("acme",))
    for topic in ("p.globex.data", "q.acme.data", "p.acme.audio", "p.acme", "p.log", "p.data"):
        assert layout.tenant_of(topic) is None and layout.lane_of(topic) is None


@given(
    prefix=st.text(alphabet="abcxyz019._-", min_size=1, max_size=20),
    tenants=st.lists(tenant_names, min_size=1, max_size=5, unique=True),
)
def test_tenant_and_lane_round_trip_through_topic_names(prefix: str, tenants: list[str]) -> None:
    layout = TopicLayout(prefix=prefix, tenants=tuple(tenants))
    names = set()
    for tenant in tenants:
        for lane in Lane:
            topic = layout.lane_topic(lane, tenant)
            assert topic.startswith(layout.tenant_prefix(tenant))
            assert layout.tenant_of(topic) == tenant
            assert layout.lane_of(topic) is lane
            names.add(topic)
    for out in layout.output_topics():
        assert layout.tenant_of(out) is None and layout.lane_of(out) is None
        names.add(out)
    assert len(names) == 3 * len(tenants) + 4  # no two roles share a name
    # A tenant's ACL prefix covers its own lanes and no other tenant's.
    for tenant in tenants:
        own = {n for n in names if n.startswith(layout.tenant_prefix(tenant))}
        assert own == {layout.lane_topic(lane, tenant) for lane in Lane}


def test_acl_grants_keep_each_tenant_on_its_own_prefix() -> None:
    layout = TopicLayout(prefix="p", tenants=("acme", "globex"))
    grants = acl_grants(layout)
    acme = [g for g in grants if g.principal == "User:acme"]
    assert {(g.name, g.prefixed, g.operation) for g in acme} == {
        ("p.acme.", True, "write"),
        ("p.acme.", True, "describe"),
    }
    proc = [g for g in grants if g.principal == "User:processor"]
    # The processor reads the lanes but never writes them.
    lane_ops = {(g.name, g.operation) for g in proc if g.name in layout.lane_topics()}
    assert {op for _, op in lane_ops} == {"read", "describe"}
    assert {g.name for g in proc if g.operation == "write" and g.resource == "topic"} == set(
        layout.output_topics()
    )
    assert any(g.resource == "transactional_id" and g.name == "rspp-p" for g in proc)
    assert acl_grants(layout) == grants  # deterministic


def test_kafka_settings_read_the_sasl_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PROTOCOL", "MECHANISM", "USERNAME", "PASSWORD"):
        monkeypatch.delenv(f"RSPP_KAFKA_SASL_{var}", raising=False)
    monkeypatch.delenv("RSPP_KAFKA_SECURITY_PROTOCOL", raising=False)
    assert kafka_settings("h:1", **{"group.id": "g"}) == {
        "bootstrap.servers": "h:1",
        "group.id": "g",
    }
    monkeypatch.setenv("RSPP_KAFKA_SASL_USERNAME", "acme")
    monkeypatch.setenv("RSPP_KAFKA_SASL_PASSWORD", "pw")
    assert kafka_settings("h:1") == {
        "bootstrap.servers": "h:1",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "acme",
        "sasl.password": "pw",
    }
    # Explicit credentials win over the environment (one process, several tenants).
    mine = KafkaCredentials(username="globex", password="s3cret-pw", mechanism="SCRAM-SHA-512")
    got = kafka_settings("h:1", credentials=mine)
    assert got["sasl.username"] == "globex" and got["sasl.mechanism"] == "SCRAM-SHA-512"
    assert "s3cret" not in repr(mine)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"RSPP_KAFKA_SASL_USERNAME": "acme"}, "RSPP_KAFKA_SASL_PASSWORD is not set"),
        ({"RSPP_KAFKA_SASL_PASSWORD": "pw"}, "RSPP_KAFKA_SASL_USERNAME is not set"),
        ({"RSPP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs RSPP_KAFKA_SASL_USERNAME"),
        ({"RSPP_KAFKA_SECURITY_PROTOCOL": "TLS"}, "RSPP_KAFKA_SECURITY_PROTOCOL='TLS'"),
        (
            {
                "RSPP_KAFKA_SASL_USERNAME": "a",
                "RSPP_KAFKA_SASL_PASSWORD": "b",
                "RSPP_KAFKA_SASL_MECHANISM": "GSSAPI",
            },
            "RSPP_KAFKA_SASL_MECHANISM='GSSAPI'",
        ),
    ],
)
def test_inconsistent_security_variables_are_one_line_errors(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], match: str
) -> None:
    for var in ("SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD"):
        monkeypatch.delenv(f"RSPP_KAFKA_{var}", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(KafkaConfigError, match=match):
        kafka_settings("h:1")


def _rspp(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from streams.cli import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_bad_tenant_is_a_one_line_error() -> None:
    proc = _rspp("topics", "apply", "-p", "p", "--tenant", "Acme", "--bootstrap", "127.0.0.1:1")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "rspp: error: invalid tenant 'Acme': use lower-case letters, digits, '_' and '-'"
    ]


def test_cli_tenant_users_need_secure_mode() -> None:
    proc = _rspp("broker", "up", "--port", "1", "--tenant", "acme")
    assert proc.returncode == 2
    assert "needs --secure" in proc.stderr and "Traceback" not in proc.stderr
