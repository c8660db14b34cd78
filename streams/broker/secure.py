"""The local broker's secure mode: SASL/SCRAM users, StandardAuthorizer, deny by default.

The client listener speaks SASL_PLAINTEXT with SCRAM-SHA-256: one user per tenant, one
for the processor and ``admin``, the super user that creates topics and ACLs. Passwords
are generated once and kept in ``credentials.json`` (mode 0600) in the broker's state
dir. The controller listener is secured too (SASL/PLAIN with a user known only to the
broker's own config): left PLAINTEXT, it would admit ``User:ANONYMOUS``, which a combined
broker/controller must then make a super user, and any local process could reach it.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.config import KafkaCredentials
from streams.errors import BrokerError, StreamsError
from streams.topics import validate_tenant

__all__ = [
    "ADMIN_USER",
    "BrokerCredentials",
    "ensure_credentials",
    "load_credentials",
    "scram_format_args",
    "secure_properties",
    "sync_scram_users",
    "write_private",
]

ADMIN_USER = "admin"
CONTROLLER_USER = "controller"
MECHANISM = "SCRAM-SHA-256"
PROTOCOL = "SASL_PLAINTEXT"
_SCRAM_ITERATIONS = 8192  # Kafka's minimum for SCRAM-SHA-256 is 4096


@dataclass(frozen=True, kw_only=True)
class BrokerCredentials:
    """The users of one secure local broker and their passwords."""

    bootstrap: str
    processor: str
    # name -> password: admin, processor and every tenant. Never in a repr.
    users: Mapping[str, str] = field(repr=False)
    controller_password: str = field(repr=False)

    @property
    def tenants(self) -> tuple[str, ...]:
        return tuple(sorted(u for u in self.users if u not in (ADMIN_USER, self.processor)))

    def credentials(self, user: str) -> KafkaCredentials:
        try:
            password = self.users[user]
        except KeyError:
            known = ", ".join(sorted(self.users))
            raise BrokerError(f"no user {user!r} on this broker (users: {known})") from None
        return KafkaCredentials(
            username=user, password=password, mechanism=MECHANISM, protocol=PROTOCOL
        )

    def env(self, user: str) -> dict[str, str]:
        """The environment that makes every RSPP client connect as ``user``."""
        creds = self.credentials(user)
        return {
            "RSPP_BOOTSTRAP": self.bootstrap,
            "RSPP_KAFKA_SECURITY_PROTOCOL": creds.protocol,
            "RSPP_KAFKA_SASL_MECHANISM": creds.mechanism,
            "RSPP_KAFKA_SASL_USERNAME": creds.username,
            "RSPP_KAFKA_SASL_PASSWORD": creds.password,
        }

    def role(self, user: str) -> str:
        if user == ADMIN_USER:
            return "super user: topics, ACLs, users"
        if user == self.processor:
            return "processor: `rspp run`"
        return f"tenant {user}: writes only its own lane topics"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (it holds passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_credentials(path: Path) -> BrokerCredentials | None:
    """The credentials file at ``path``; None when there is none (a plain broker)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return BrokerCredentials(
            bootstrap=str(raw["bootstrap"]),
            processor=str(raw["processor"]),
            users={str(k): str(v) for k, v in dict(raw["users"]).items()},
            controller_password=str(raw["controller_password"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BrokerError(f"{path}: unreadable broker credentials ({exc})") from None


def ensure_credentials(
    path: Path, *, bootstrap: str, tenants: Iterable[str], processor: str
) -> BrokerCredentials:
    """Load ``path`` and add a generated password for every user it lacks; passwords
    already there are kept, so clients configured earlier keep working."""
    reserved = {ADMIN_USER, CONTROLLER_USER, processor}
    wanted = [ADMIN_USER, processor]
    for tenant in tenants:
        try:
            validate_tenant(tenant)
        except StreamsError as exc:
            raise BrokerError(str(exc)) from None
        if tenant in reserved:
            raise BrokerError(
                f"tenant {tenant!r} would share a name with a broker user; pick another"
            )
        wanted.append(tenant)
    current = load_credentials(path)
    if current is not None and current.processor != processor:
        raise BrokerError(
            f"{path} names processor user {current.processor!r}, not {processor!r}; "
            "use that name or start over with --fresh"
        )
    users = dict(current.users) if current is not None else {}
    controller = current.controller_password if current is not None else _password()
    changed = current is None or current.bootstrap != bootstrap
    for user in wanted:
        if user not in users:
            users[user] = _password()
            changed = True
    creds = BrokerCredentials(
        bootstrap=bootstrap, processor=processor, users=users, controller_password=controller
    )
    if changed:
        body = {
            "bootstrap": bootstrap,
            "processor": processor,
            "mechanism": MECHANISM,
            "security_protocol": PROTOCOL,
            "users": users,
            "controller_password": controller,
        }
        write_private(path, json.dumps(body, indent=2, sort_keys=True) + "\n")
    return creds


def _password() -> str:
    # url-safe: no ',', ']' or '=' that would break the StorageTool's --add-scram syntax,
    # no '"' that would break a JAAS line.
    return secrets.token_urlsafe(24)


def secure_properties(
    creds: BrokerCredentials, *, port: int, controller_port: int
) -> dict[str, str]:
    """server.properties entries that replace the PLAINTEXT listeners."""
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    admin_pw = creds.users[ADMIN_USER]
    ctl_pw = creds.controller_password
    return {
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": MECHANISM,
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": (
            f'{scram} required username="{ADMIN_USER}" password="{admin_pw}";'
        ),
        # SCRAM users live in the metadata log, which the controller listener serves: the
        # controller authenticates with PLAIN from its own config instead.
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": (
            f'{plain} required username="{CONTROLLER_USER}" password="{ctl_pw}" '
            f'user_{CONTROLLER_USER}="{ctl_pw}";'
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN_USER};User:{CONTROLLER_USER}",
    }


def scram_format_args(creds: BrokerCredentials) -> list[str]:
    """StorageTool ``format`` arguments that create every SCRAM user with the metadata."""
    return [
        arg
        for user, password in sorted(creds.users.items())
        for arg in (
            "--add-scram",
            f"{MECHANISM}=[name={user},iterations={_SCRAM_ITERATIONS},password={password}]",
        )
    ]


def sync_scram_users(
    settings: Mapping[str, Any], creds: BrokerCredentials, *, timeout: float
) -> list[str]:
    """Create the SCRAM users the running broker lacks (tenants added after it was
    formatted); return their names. Existing users are left as they are."""
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient(dict(settings))
    try:
        everyone: Any = admin.describe_user_scram_credentials(request_timeout=timeout)
        described = everyone.result(timeout=timeout)  # one future when no users are named
    except Exception as exc:
        raise BrokerError(f"could not list the broker's SCRAM users: {exc}") from None
    have = set(described)
    missing = sorted(u for u in creds.users if u not in have)
    if not missing:
        return []
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, _SCRAM_ITERATIONS)
    upserts: list[Any] = [
        UserScramCredentialUpsertion(u, info, creds.users[u].encode()) for u in missing
    ]
    for user, future in admin.alter_user_scram_credentials(
        upserts, request_timeout=timeout
    ).items():
        try:
            future.result(timeout=timeout)
        except Exception as exc:
            raise BrokerError(f"could not create SCRAM user {user!r}: {exc}") from None
    return missing
