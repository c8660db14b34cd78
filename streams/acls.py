"""Kafka ACLs of a multi-tenant deployment: who may write which lane topics.

Each tenant's principal ``User:<tenant>`` may write (and describe) only the topics under
its own prefix ``P.<tenant>.``, so a producer cannot put records on another tenant's
lanes: the broker refuses them with TOPIC_AUTHORIZATION_FAILED. The processor's
principal reads every lane topic, owns the output topics, its consumer group and its
transactional ids. The cluster must deny what no ACL allows
(``allow.everyone.if.no.acl.found=false``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.config import kafka_settings
from streams.errors import StreamsError
from streams.topics import TopicLayout

__all__ = ["AclError", "AclGrant", "acl_grants", "apply_acls", "describe_acls"]

# Changelog restores read through short-lived groups named rspp-restore-<random>.
RESTORE_GROUP_PREFIX = "rspp-restore-"


class AclError(StreamsError):
    """ACLs could not be created or listed."""


@dataclass(frozen=True, kw_only=True, order=True)
class AclGrant:
    """One ALLOW rule: ``principal`` may ``operation`` on a resource."""

    principal: str  # e.g. "User:acme"
    resource: str  # "topic" | "group" | "transactional_id"
    name: str
    prefixed: bool
    operation: str  # "write" | "read" | "describe"

    def as_dict(self) -> dict[str, object]:
        return {
            "principal": self.principal,
            "resource": self.resource,
            "name": self.name,
            "pattern": "prefixed" if self.prefixed else "literal",
            "operation": self.operation,
        }


def acl_grants(
    layout: TopicLayout, *, processor: str = "processor", group: str | None = None
) -> tuple[AclGrant, ...]:
    """Every ALLOW rule the deployment needs, sorted. ``group`` is the processor's consumer
    group (default ``rspp-<prefix>``); its transactional ids start with it too."""
    group_name = group or f"rspp-{layout.prefix}"
    proc = f"User:{processor}"
    grants: set[AclGrant] = set()
    for tenant in layout.tenants:
        for op in ("write", "describe"):
            grants.add(
                AclGrant(
                    principal=f"User:{tenant}",
                    resource="topic",
                    name=layout.tenant_prefix(tenant),
                    prefixed=True,
                    operation=op,
                )
            )
    for topic in layout.lane_topics():
        for op in ("read", "describe"):
            grants.add(_g(proc, "topic", topic, op, prefixed=False))
    for topic in layout.output_topics():
        for op in ("write", "read", "describe"):
            grants.add(_g(proc, "topic", topic, op, prefixed=False))
    for name in (group_name, RESTORE_GROUP_PREFIX):
        grants.add(_g(proc, "group", name, "read", prefixed=True))
        grants.add(_g(proc, "group", name, "describe", prefixed=True))
    # Transactional ids are "<group>.<holder>". Since Kafka 3.0 an idempotent producer needs
    # WRITE on a topic, not the cluster-level IDEMPOTENT_WRITE.
    for op in ("write", "describe"):
        grants.add(_g(proc, "transactional_id", group_name, op, prefixed=True))
    return tuple(sorted(grants))


def _g(principal: str, resource: str, name: str, op: str, *, prefixed: bool) -> AclGrant:
    return AclGrant(
        principal=principal, resource=resource, name=name, prefixed=prefixed, operation=op
    )


def _binding(grant: AclGrant) -> Any:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return AclBinding(
        ResourceType[grant.resource.upper()],
        grant.name,
        ResourcePatternType.PREFIXED if grant.prefixed else ResourcePatternType.LITERAL,
        grant.principal,
        "*",
        AclOperation[grant.operation.upper()],
        AclPermissionType.ALLOW,
    )


def apply_acls(
    bootstrap: str,
    layout: TopicLayout,
    *,
    processor: str = "processor",
    group: str | None = None,
    timeout: float = 30.0,
) -> tuple[AclGrant, ...]:
    """Create every rule of :func:`acl_grants` (idempotent: Kafka keeps one copy of an
    identical binding). Needs a principal allowed to alter ACLs (a super user)."""
    grants = acl_grants(layout, processor=processor, group=group)
    admin = _admin(bootstrap)
    futures = admin.create_acls([_binding(g) for g in grants], request_timeout=timeout)
    for binding, future in futures.items():
        try:
            future.result(timeout=timeout)
        except Exception as exc:
            raise AclError(f"could not create ACL {binding}: {exc}") from exc
    _wait_visible(bootstrap, [_binding(g) for g in grants], timeout=timeout)
    return grants


def _key(binding: Any) -> tuple[str, ...]:
    return tuple(
        str(x)
        for x in (
            binding.restype,
            binding.name,
            binding.resource_pattern_type,
            binding.principal,
            binding.host,
            binding.operation,
            binding.permission_type,
        )
    )


def _wait_visible(bootstrap: str, bindings: list[Any], *, timeout: float) -> None:
    """Wait until the broker's authorizer holds ``bindings``. The controller acknowledges
    new ACLs before the broker applies them, and a producer that starts in that gap is
    refused with TOPIC_AUTHORIZATION_FAILED, which it does not retry."""
    import time

    wanted = {_key(b) for b in bindings}
    deadline = time.monotonic() + timeout
    while True:
        have = {_key(b) for b in describe_acls(bootstrap, timeout=timeout)}
        if wanted <= have:
            return
        if time.monotonic() > deadline:
            raise AclError(f"{len(wanted - have)} new ACL(s) not in force after {timeout:.0f}s")
        time.sleep(0.1)


def describe_acls(
    bootstrap: str, *, principal: str | None = None, timeout: float = 30.0
) -> list[Any]:
    """The cluster's ACL bindings (of one ``principal``, or all)."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    admin = _admin(bootstrap)
    # None matches any name, principal and host (the stubs type them as str).
    match: list[Any] = [
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        principal,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    ]
    flt = AclBindingFilter(*match)
    try:
        return list(admin.describe_acls(flt, request_timeout=timeout).result(timeout=timeout))
    except Exception as exc:
        raise AclError(f"could not list ACLs: {exc}") from exc


def _admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka_settings(bootstrap))
