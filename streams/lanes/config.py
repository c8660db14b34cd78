"""Frozen settings of the lane runtime: queue bounds, weights, prefetch, shedding.

Built once at the edge (profile/CLI) and passed to the hot path; every value is
validated here so the scheduler and ingress never re-check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from streams.lanes.errors import LaneConfigError
from streams.topics import Lane

__all__ = [
    "LaneConfig",
    "LaneLimits",
    "LaneWeights",
    "PrefetchLimits",
    "ShedPolicy",
    "ShedVictim",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneLimits:
    """Bounds of one lane queue.

    ``high_watermark``: pause the lane's partitions once the queue holds this many.
    ``low_watermark``: resume them once it has drained to this many.
    ``capacity``: hard bound; the gap above ``high_watermark`` absorbs records
    already fetched when the pause takes effect, so it must be at least 1.
    """

    capacity: int
    high_watermark: int
    low_watermark: int

    def __post_init__(self) -> None:
        if not 0 <= self.low_watermark < self.high_watermark < self.capacity:
            raise LaneConfigError(
                "lane limits need 0 <= low_watermark < high_watermark < capacity "
                f"(got low={self.low_watermark}, high={self.high_watermark}, "
                f"capacity={self.capacity})"
            )

    @property
    def headroom(self) -> int:
        return self.capacity - self.high_watermark


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneWeights:
    """Relative dispatch share of DATA vs TELEMETRY (CONTROL is strict priority, no weight)."""

    data: int = 8
    telemetry: int = 1

    def __post_init__(self) -> None:
        if self.data < 1 or self.telemetry < 1:
            raise LaneConfigError(
                f"lane weights must be >= 1 (got data={self.data}, telemetry={self.telemetry})"
            )


class ShedVictim(StrEnum):
    """Which record of a full lane is dropped."""

    OLDEST = "oldest"  # stale audio is worth least to a low-latency turn
    NEWEST = "newest"  # drop the arriving record, keep what is queued


@dataclass(frozen=True, slots=True, kw_only=True)
class ShedPolicy:
    """How a full DATA/TELEMETRY queue sheds under a low-latency profile.

    ``lanes`` is the shed order: when lane ``L`` overflows, every lane listed
    before ``L`` is emptied first (telemetry goes before data), then ``batch``
    records of ``L`` itself are dropped per ``victim``. ``rule`` and
    ``defaulting_source`` are copied into every :class:`ShedDecision` so the Shed
    event says which rule fired and where it came from (profile, policy, runtime
    default). CONTROL can never be listed: control is never shed.
    """

    rule: str = "low-latency/oldest-first"
    defaulting_source: str = "runtime-default"
    lanes: tuple[Lane, ...] = (Lane.TELEMETRY, Lane.DATA)
    victim: ShedVictim = ShedVictim.OLDEST
    batch: int = 1

    def __post_init__(self) -> None:
        if not self.rule or not self.defaulting_source:
            raise LaneConfigError("shed policy needs a rule name and a defaulting source")
        if Lane.CONTROL in self.lanes:
            raise LaneConfigError(
                "shed policy may not list the control lane: control is never shed"
            )
        if not self.lanes or len(set(self.lanes)) != len(self.lanes):
            raise LaneConfigError(f"shed policy lanes must be distinct and non-empty: {self.lanes}")
        if self.batch < 1:
            raise LaneConfigError(f"shed batch must be >= 1 (got {self.batch})")

    def sheds(self, lane: Lane) -> bool:
        return lane in self.lanes


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefetchLimits:
    """librdkafka fetch bounds, so nothing is prefetched without limit.

    The defaults keep well under a megabyte per consumer in flight: enough to
    keep a data lane busy, small enough that a control record fetched by the same
    consumer is never queued behind seconds of data (measured here: 2.6-4.5 s
    with librdkafka's 64 MiB default).
    """

    queued_max_kbytes: int = 256
    queued_min_messages: int = 64
    fetch_max_bytes: int = 1_048_576
    max_partition_fetch_bytes: int = 131_072
    fetch_wait_max_ms: int = 20
    # librdkafka waits this long before re-fetching a partition whose queue was over
    # the thresholds above; the queue is shared by every partition of a consumer, so
    # the default (1000 ms) would also park an idle control partition behind data.
    fetch_queue_backoff_ms: int = 2

    def __post_init__(self) -> None:
        if min(self.queued_max_kbytes, self.queued_min_messages, self.fetch_wait_max_ms) < 1:
            raise LaneConfigError("prefetch limits must be >= 1")
        if self.fetch_queue_backoff_ms < 0:
            raise LaneConfigError("fetch_queue_backoff_ms must be >= 0")
        # librdkafka refuses fetch.max.bytes below message.max.bytes (1000000 by default).
        if self.fetch_max_bytes < 1_000_000:
            raise LaneConfigError(
                f"fetch_max_bytes must be >= 1000000 (got {self.fetch_max_bytes})"
            )
        if not 1 <= self.max_partition_fetch_bytes <= self.fetch_max_bytes:
            raise LaneConfigError("max_partition_fetch_bytes must be in 1..fetch_max_bytes")

    def consumer_settings(self) -> dict[str, str | int]:
        return {
            "queued.max.messages.kbytes": self.queued_max_kbytes,
            "queued.min.messages": self.queued_min_messages,
            "fetch.max.bytes": self.fetch_max_bytes,
            "max.partition.fetch.bytes": self.max_partition_fetch_bytes,
            "fetch.wait.max.ms": self.fetch_wait_max_ms,
            "fetch.queue.backoff.ms": self.fetch_queue_backoff_ms,
        }


def _limits(capacity: int, high: int, low: int) -> LaneLimits:
    return LaneLimits(capacity=capacity, high_watermark=high, low_watermark=low)


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneConfig:
    """Everything the scheduler and ingress need; ``shedding=None`` means backpressure only."""

    control: LaneLimits = field(default_factory=lambda: _limits(256, 192, 64))
    data: LaneLimits = field(default_factory=lambda: _limits(1024, 768, 256))
    telemetry: LaneLimits = field(default_factory=lambda: _limits(256, 192, 64))
    weights: LaneWeights = field(default_factory=LaneWeights)
    prefetch: PrefetchLimits = field(default_factory=PrefetchLimits)
    shedding: ShedPolicy | None = None

    def limits(self, lane: Lane) -> LaneLimits:
        if lane is Lane.CONTROL:
            return self.control
        return self.data if lane is Lane.DATA else self.telemetry

    def sheds(self, lane: Lane) -> bool:
        return self.shedding is not None and self.shedding.sheds(lane)

    @property
    def poll_batch(self) -> int:
        """Records taken from librdkafka per poll: at most the smallest headroom, so a
        lane that crosses its high watermark mid-batch still has room for the rest."""
        return min(256, *(self.limits(lane).headroom for lane in Lane))
