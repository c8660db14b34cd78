"""The Kafka topic layout of one RSPP deployment (a *prefix*), created idempotently.

Lane topics (control, data, telemetry) must share a partition count so that a
session's three partitions are co-located on one processor, as Kafka Streams
requires of co-partitioned inputs. In a multi-tenant layout every tenant's lane
topics share that one count too: one consumer group reads them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from streams.config import kafka_settings
from streams.errors import TopicLayoutError

__all__ = [
    "INGRESS_MAX_RECORD_BYTES",
    "OUTPUT_MAX_RECORD_BYTES",
    "OUTPUT_READER_CONFIG",
    "Lane",
    "TopicDescription",
    "TopicLayout",
    "TopicRole",
    "apply_topics",
    "delete_topics",
    "describe_topics",
    "topic_names",
    "validate_tenant",
]


class Lane(StrEnum):
    """Ingress lanes in strict priority order."""

    CONTROL = "control"
    DATA = "data"
    TELEMETRY = "telemetry"


class TopicRole(StrEnum):
    CONTROL = "control"
    DATA = "data"
    TELEMETRY = "telemetry"
    LOG = "log"
    LEASES = "leases"
    SESSIONS = "sessions"
    DLQ = "dlq"


LANE_ROLES = (TopicRole.CONTROL, TopicRole.DATA, TopicRole.TELEMETRY)
OUTPUT_ROLES = (TopicRole.LOG, TopicRole.LEASES, TopicRole.SESSIONS, TopicRole.DLQ)

# Record size limits. What the processor writes wraps what it read (a dead letter carries
# the original bytes plus the reason; the log records an input whole), so the topics it
# writes accept larger records than the lanes: bad input at the lanes' limit must still
# be dead-lettered, not crash the processor's producer.
INGRESS_MAX_RECORD_BYTES = 1 << 20
OUTPUT_MAX_RECORD_BYTES = 4 << 20
# A reader of the output topics (P.log, P.dlq) takes any record they can hold: consumers
# merge these settings, and decode with EventCodec(max_frame_bytes=OUTPUT_MAX_RECORD_BYTES).
# A fetch holds a few such records; librdkafka's receive buffer (100 MB) is larger still.
OUTPUT_READER_CONFIG: Mapping[str, Any] = MappingProxyType({
    "max.partition.fetch.bytes": OUTPUT_MAX_RECORD_BYTES,
    "fetch.max.bytes": 4 * OUTPUT_MAX_RECORD_BYTES,
})
_LANE = {"max.message.bytes": str(INGRESS_MAX_RECORD_BYTES)}
_OUTPUT = {"max.message.bytes": str(OUTPUT_MAX_RECORD_BYTES)}

# Per-role topic configs. The log is the source of truth: never compacted, never expired.
_ROLE_CONFIGS: dict[TopicRole, dict[str, str]] = {
    TopicRole.CONTROL: {
        "cleanup.policy": "delete",
        "retention.ms": str(7 * 24 * 3600 * 1000),
        **_LANE,
    },
    TopicRole.DATA: {"cleanup.policy": "delete", "retention.ms": str(24 * 3600 * 1000), **_LANE},
    TopicRole.TELEMETRY: {
        "cleanup.policy": "delete",
        "retention.ms": str(24 * 3600 * 1000),
        **_LANE,
    },
    TopicRole.LOG: {
        "cleanup.policy": "delete",
        "retention.ms": "-1",
        "retention.bytes": "-1",
        **_OUTPUT,
    },
    TopicRole.LEASES: {"cleanup.policy": "compact", **_OUTPUT},
    TopicRole.SESSIONS: {"cleanup.policy": "compact", **_OUTPUT},
    TopicRole.DLQ: {
        "cleanup.policy": "delete",
        "retention.ms": str(30 * 24 * 3600 * 1000),
        **_OUTPUT,
    },
}


@dataclass(frozen=True, kw_only=True)
class TopicLayout:
    """Names and settings of every topic under one prefix.

    Single-tenant (``tenants=()``, the default): one set of lane topics
    ``P.control``, ``P.data``, ``P.telemetry``. Multi-tenant: each tenant writes its own
    lane topics ``P.<tenant>.<lane>`` (what a prefixed Kafka ACL on
    :meth:`tenant_prefix` protects); the output topics (``P.log`` ...) stay shared.
    """

    prefix: str
    partitions: int = 6
    tenants: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.prefix or any(c not in _TOPIC_CHARS for c in self.prefix):
            raise TopicLayoutError(
                f"invalid prefix {self.prefix!r}: use letters, digits, '.', '_' and '-'"
            )
        if self.partitions < 1:
            raise TopicLayoutError(f"partitions must be >= 1 (got {self.partitions})")
        # Accept any sequence, keep a tuple: the layout is hashable and immutable.
        object.__setattr__(self, "tenants", tuple(self.tenants))
        seen: set[str] = set()
        for tenant in self.tenants:
            validate_tenant(tenant)
            if tenant in seen:
                raise TopicLayoutError(f"tenant {tenant!r} is listed twice")
            seen.add(tenant)

    @property
    def multi_tenant(self) -> bool:
        """True when every tenant has its own lane topics."""
        return bool(self.tenants)

    def topic(self, role: TopicRole) -> str:
        """The topic of ``role``. Lane roles raise in multi-tenant mode (use :meth:`lane_topic`)."""
        if self.tenants and role in LANE_ROLES:
            raise TopicLayoutError(
                f"prefix {self.prefix!r} has per-tenant {role.value} topics; "
                "use lane_topic(lane, tenant)"
            )
        return f"{self.prefix}.{role.value}"

    @property
    def control(self) -> str:
        return self.topic(TopicRole.CONTROL)

    @property
    def data(self) -> str:
        return self.topic(TopicRole.DATA)

    @property
    def telemetry(self) -> str:
        return self.topic(TopicRole.TELEMETRY)

    @property
    def log(self) -> str:
        return self.topic(TopicRole.LOG)

    @property
    def leases(self) -> str:
        return self.topic(TopicRole.LEASES)

    @property
    def sessions(self) -> str:
        return self.topic(TopicRole.SESSIONS)

    @property
    def dlq(self) -> str:
        return self.topic(TopicRole.DLQ)

    def lane_topic(self, lane: Lane, tenant: str | None = None) -> str:
        """The topic of ``lane``. Multi-tenant: ``tenant`` is required and must be listed.
        Single-tenant: ``tenant`` is ignored, every tenant shares the one set of lanes."""
        if not self.tenants:
            return f"{self.prefix}.{lane.value}"
        if tenant is None:
            raise TopicLayoutError(
                f"prefix {self.prefix!r} is multi-tenant: name the tenant of the {lane.value} lane"
            )
        self._require_tenant(tenant)
        return f"{self.prefix}.{tenant}.{lane.value}"

    def lane_topics(self, lane: Lane | None = None) -> tuple[str, ...]:
        """Every lane topic (of one ``lane``, or of all), of every tenant, sorted."""
        lanes = tuple(Lane) if lane is None else (lane,)
        owners: tuple[str | None, ...] = self.tenants or (None,)
        return tuple(sorted(self.lane_topic(ln, t) for ln in lanes for t in owners))

    def output_topics(self) -> tuple[str, ...]:
        """The topics the processor writes (log, leases, sessions, dlq), in role order."""
        return tuple(self.topic(r) for r in OUTPUT_ROLES)

    def topics(self) -> tuple[tuple[str, TopicRole, str | None], ...]:
        """Every topic of the layout as ``(name, role, tenant)``: lanes first, then outputs."""
        rows: list[tuple[str, TopicRole, str | None]] = []
        for owner in self.tenants or (None,):
            for lane in Lane:
                rows.append((self.lane_topic(lane, owner), TopicRole(lane.value), owner))
        rows.extend((self.topic(r), r, None) for r in OUTPUT_ROLES)
        return tuple(rows)

    def tenant_prefix(self, tenant: str) -> str:
        """``P.<tenant>.``: the prefix of the tenant's lane topics (its ACL's resource)."""
        self._require_tenant(tenant)
        return f"{self.prefix}.{tenant}."

    def tenant_of(self, topic: str) -> str | None:
        """The tenant whose lane topic ``topic`` is; None in single-tenant mode or for
        any other topic."""
        parsed = self._parse_lane(topic)
        return parsed[0] if parsed is not None else None

    def lane_of(self, topic: str) -> Lane | None:
        """The lane of ``topic`` if it is one of this layout's lane topics."""
        parsed = self._parse_lane(topic)
        return parsed[1] if parsed is not None else None

    def _parse_lane(self, topic: str) -> tuple[str | None, Lane] | None:
        head = self.prefix + "."
        if not topic.startswith(head):
            return None
        rest = topic[len(head) :]
        if not self.tenants:
            return (None, Lane(rest)) if rest in _LANE_VALUES else None
        tenant, dot, lane = rest.partition(".")
        if dot and lane in _LANE_VALUES and tenant in self.tenants:
            return tenant, Lane(lane)
        return None

    def _require_tenant(self, tenant: str) -> None:
        if tenant not in self.tenants:
            known = ", ".join(self.tenants) or "none: the layout is single-tenant"
            raise TopicLayoutError(
                f"unknown tenant {tenant!r} for prefix {self.prefix!r} (tenants: {known})"
            )


def validate_tenant(tenant: str) -> str:
    """Return ``tenant`` if it can name a tenant's topics and principal; else raise."""
    if not isinstance(tenant, str) or not tenant:
        raise TopicLayoutError("a tenant name must be a non-empty string")
    if len(tenant) > MAX_TENANT_CHARS:
        raise TopicLayoutError(
            f"tenant {tenant[:16]!r}... is {len(tenant)} characters; at most {MAX_TENANT_CHARS}"
        )
    if any(c not in _TENANT_CHARS for c in tenant):
        raise TopicLayoutError(
            f"invalid tenant {tenant!r}: use lower-case letters, digits, '_' and '-'"
        )
    if tenant in _ROLE_VALUES:
        # P.log.control would read as a log topic.
        raise TopicLayoutError(f"tenant {tenant!r} is a topic role name; pick another")
    return tenant


MAX_TENANT_CHARS = 64
_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_LANE_VALUES = frozenset(lane.value for lane in Lane)
_ROLE_VALUES = frozenset(role.value for role in TopicRole)
_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True, kw_only=True)
class TopicDescription:
    name: str
    role: TopicRole
    exists: bool
    partitions: int | None
    replication: int | None
    configs: tuple[tuple[str, str], ...]
    tenant: str | None = None  # whose lane topic (multi-tenant layouts)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role.value,
            "tenant": self.tenant,
            "exists": self.exists,
            "partitions": self.partitions,
            "replication": self.replication,
            "configs": dict(self.configs),
        }


def _admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka_settings(bootstrap))


def _wanted_configs(role: TopicRole, replication: int) -> dict[str, str]:
    configs = dict(_ROLE_CONFIGS[role])
    # Sane for the cluster size: tolerate one replica down where there are >= 3.
    configs["min.insync.replicas"] = str(max(1, replication - 1))
    return configs


def describe_topics(
    bootstrap: str, layout: TopicLayout, *, timeout: float = 10.0
) -> list[TopicDescription]:
    """Describe every topic of ``layout`` as the cluster has it now."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    admin = _admin(bootstrap)
    metadata = admin.list_topics(timeout=timeout)
    rows: list[TopicDescription] = []
    resources = []
    for name, _, _ in layout.topics():
        if name in metadata.topics and metadata.topics[name].error is None:
            resources.append(ConfigResource(ResourceType.TOPIC, name))
    config_futures = admin.describe_configs(resources) if resources else {}
    configs_by_topic: dict[str, dict[str, str]] = {}
    for resource, future in config_futures.items():
        entries = future.result(timeout=timeout)
        configs_by_topic[resource.name] = {
            key: entry.value
            for key, entry in entries.items()
            if key
            in (
                "cleanup.policy",
                "retention.ms",
                "retention.bytes",
                "min.insync.replicas",
                "max.message.bytes",
            )
        }
    for name, role, tenant in layout.topics():
        topic_md = metadata.topics.get(name)
        if topic_md is None or topic_md.error is not None:
            rows.append(
                TopicDescription(
                    name=name,
                    role=role,
                    exists=False,
                    partitions=None,
                    replication=None,
                    configs=(),
                    tenant=tenant,
                )
            )
            continue
        parts = topic_md.partitions
        replication = len(next(iter(parts.values())).replicas) if parts else 0
        rows.append(
            TopicDescription(
                name=name,
                role=role,
                exists=True,
                partitions=len(parts),
                replication=replication,
                configs=tuple(sorted(configs_by_topic.get(name, {}).items())),
                tenant=tenant,
            )
        )
    return rows


def apply_topics(
    bootstrap: str,
    layout: TopicLayout,
    *,
    replication: int | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create the missing topics of ``layout``; return the names created.

    Idempotent. Refuses when the lane topics already exist with partition counts
    that differ from each other or from ``layout.partitions``.
    """
    from confluent_kafka.admin import NewTopic

    admin = _admin(bootstrap)
    metadata = admin.list_topics(timeout=timeout)
    broker_count = max(1, len(metadata.brokers))
    rf = replication if replication is not None else min(3, broker_count)
    if rf > broker_count:
        raise TopicLayoutError(
            f"replication factor {rf} exceeds the {broker_count} broker(s) of {bootstrap}"
        )

    existing = _partition_counts(metadata, layout)
    _check_lanes(layout, existing)
    new_topics = []
    for name, role, _ in layout.topics():
        if name in existing:
            continue
        new_topics.append(
            NewTopic(
                name,
                num_partitions=layout.partitions,
                replication_factor=rf,
                config=_wanted_configs(role, rf),
            )
        )
    if not new_topics:
        return []
    # Another processor may have created one between our metadata call and now.
    created = _settle(
        admin.create_topics(new_topics, operation_timeout=timeout),
        verb="create",
        benign=("TOPIC_ALREADY_EXISTS", "already exists"),
        timeout=timeout,
    )
    ready = _wait_for_topics(admin, [t.topic for t in new_topics], timeout=timeout)
    # Check again: a topic our metadata did not show yet (another creator, or a broker
    # whose metadata lagged the controller) "already existed" with its own count.
    _check_lanes(layout, _partition_counts(ready, layout))
    return created


def _partition_counts(metadata: Any, layout: TopicLayout) -> dict[str, int]:
    return {
        name: len(md.partitions)
        for name, md in metadata.topics.items()
        if md.error is None and name.startswith(layout.prefix + ".")
    }


def _check_lanes(layout: TopicLayout, existing: dict[str, int]) -> None:
    """Refuse lane topics that are not co-partitioned or not ``layout.partitions`` wide."""
    # Every tenant's lanes: one processor group consumes them all with the range assignor.
    lane_counts = {name: existing[name] for name in layout.lane_topics() if name in existing}
    if len(set(lane_counts.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(lane_counts.items()))
        raise TopicLayoutError(
            f"lane topics are not co-partitioned ({detail}); they must share one count"
        )
    if lane_counts and next(iter(lane_counts.values())) != layout.partitions:
        have = next(iter(lane_counts.values()))
        raise TopicLayoutError(
            f"lane topics of prefix {layout.prefix!r} exist with {have} partitions, "
            f"not {layout.partitions}; use --partitions {have} or a new prefix"
        )


def topic_names(bootstrap: str, *, starts_with: str, timeout: float = 30.0) -> list[str]:
    """Names of the cluster's topics that start with ``starts_with``, sorted."""
    return _names(_admin(bootstrap), starts_with, timeout)


def _names(admin: Any, starts_with: str, timeout: float) -> list[str]:
    return sorted(n for n in admin.list_topics(timeout=timeout).topics if n.startswith(starts_with))


def delete_topics(bootstrap: str, *, starts_with: str, timeout: float = 30.0) -> list[str]:
    """Delete every topic whose name starts with ``starts_with``; return the names deleted.

    For a deployment prefix P pass ``"P."`` so that prefix ``demo`` does not also match
    ``demo2.log``. Kafka's internal topics (``__*``) are never touched.
    """
    if not starts_with or starts_with.startswith("__"):
        raise TopicLayoutError(f"refusing to delete topics matching {starts_with!r}")
    admin = _admin(bootstrap)  # must outlive its futures: a destroyed handle fails them
    names = _names(admin, starts_with, timeout)
    if not names:
        return []
    # Deleted meanwhile by someone else: the outcome the caller wanted.
    return _settle(
        admin.delete_topics(names, operation_timeout=timeout),
        verb="delete",
        benign=("UNKNOWN_TOPIC",),
        timeout=timeout,
    )


def _settle(
    futures: dict[str, Any], *, verb: str, benign: tuple[str, ...], timeout: float
) -> list[str]:
    """Wait for per-topic admin futures; names that succeeded, sorted. An error whose text
    holds one of ``benign`` means the cluster is already as wanted; others raise."""
    done: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            done.append(name)
        except Exception as exc:
            if any(marker in str(exc) for marker in benign):
                continue
            raise TopicLayoutError(f"could not {verb} topic {name}: {exc}") from exc
    return sorted(done)


def _wait_for_topics(admin: Any, names: list[str], *, timeout: float) -> Any:
    """Wait until ``names`` have leaders; returns that metadata."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=timeout)
        ready = all(
            n in md.topics
            and md.topics[n].error is None
            and all(p.leader >= 0 for p in md.topics[n].partitions.values())
            for n in names
        )
        if ready:
            return md
        time.sleep(0.1)
    raise TopicLayoutError(f"topics not ready after {timeout:.0f}s: {', '.join(names)}")
