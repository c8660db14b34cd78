"""Bounded lane queues and the deterministic dispatch order (pure logic, no Kafka).

CONTROL is strict priority: whenever a control record is queued it is the next
one out. DATA and TELEMETRY share the rest by smooth weighted round robin
(nginx's algorithm), which spreads the weights evenly instead of in bursts:
8:1 gives ``D D D D T D D D D`` rather than eight D then one T.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from streams.lanes.config import LaneConfig, LaneWeights, ShedVictim
from streams.lanes.records import LaneRecord
from streams.lanes.shedding import ShedDecision, decisions_for
from streams.topics import Lane

__all__ = ["LaneScheduler", "Offer", "SmoothWeightedRoundRobin"]

_WEIGHTED = (Lane.DATA, Lane.TELEMETRY)


class SmoothWeightedRoundRobin:
    """Pick among the non-empty weighted lanes; same call sequence ⇒ same picks."""

    __slots__ = ("_current", "_weights")

    def __init__(self, weights: LaneWeights) -> None:
        self._weights = {Lane.DATA: weights.data, Lane.TELEMETRY: weights.telemetry}
        self._current = {Lane.DATA: 0, Lane.TELEMETRY: 0}

    def pick(self, ready: Iterable[Lane]) -> Lane | None:
        eligible = [lane for lane in _WEIGHTED if lane in ready]
        if not eligible:
            return None
        if len(eligible) == 1:
            # A lone lane is served without touching the counters, so an idle lane
            # neither banks credit nor owes any when it comes back.
            return eligible[0]
        total = 0
        best = eligible[0]
        for lane in eligible:
            self._current[lane] += self._weights[lane]
            total += self._weights[lane]
            if self._current[lane] > self._current[best]:
                best = lane  # strict '>' keeps DATA on ties: fixed tie order
        self._current[best] -= total
        return best


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """Outcome of :meth:`LaneScheduler.offer`.

    ``accepted`` is False only when the lane is full and may not shed: the caller
    must keep the record (rewind its partition) and stop feeding that lane.
    ``shed`` lists what was dropped to make room (possibly the offered record
    itself under ``ShedVictim.NEWEST``). ``at_high_watermark`` tells the caller to
    pause the lane's partitions.
    """

    accepted: bool
    shed: tuple[ShedDecision, ...] = ()
    at_high_watermark: bool = False


_ACCEPTED = Offer(accepted=True)
_ACCEPTED_HIGH = Offer(accepted=True, at_high_watermark=True)
_REFUSED = Offer(accepted=False, at_high_watermark=True)


class LaneScheduler:
    """Three bounded FIFO queues and the dispatch order over them.

    Memory is bounded by construction: no queue ever holds more than its lane's
    ``capacity``; a full lane either sheds (if the config's shed policy lists it)
    or refuses the record.
    """

    __slots__ = ("_config", "_queues", "_wrr")

    def __init__(self, config: LaneConfig) -> None:
        self._config = config
        self._queues: dict[Lane, deque[LaneRecord]] = {lane: deque() for lane in Lane}
        self._wrr = SmoothWeightedRoundRobin(config.weights)

    @property
    def config(self) -> LaneConfig:
        return self._config

    def depth(self, lane: Lane) -> int:
        return len(self._queues[lane])

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def offer(self, record: LaneRecord) -> Offer:
        queue = self._queues[record.lane]
        limits = self._config.limits(record.lane)
        if len(queue) < limits.capacity:
            queue.append(record)
            return _ACCEPTED_HIGH if len(queue) >= limits.high_watermark else _ACCEPTED
        policy = self._config.shedding
        if policy is None or not policy.sheds(record.lane):
            return _REFUSED
        shed: list[LaneRecord] = []
        # Lower-value lanes go first: an overflowing DATA lane empties TELEMETRY,
        # which frees dispatch slots for data without touching any audio.
        for lane in policy.lanes:
            if lane is record.lane:
                break
            shed.extend(self._queues[lane])
            self._queues[lane].clear()
        if policy.victim is ShedVictim.NEWEST:
            shed.append(record)
        else:
            for _ in range(min(policy.batch, len(queue))):
                shed.append(queue.popleft())
            queue.append(record)
        return Offer(
            accepted=True,
            shed=decisions_for(policy, shed),
            at_high_watermark=len(queue) >= limits.high_watermark,
        )

    def next(self) -> LaneRecord | None:
        """The next record to dispatch: control first, then DATA:TELEMETRY by weight."""
        control = self._queues[Lane.CONTROL]
        if control:
            return control.popleft()
        ready = [lane for lane in _WEIGHTED if self._queues[lane]]
        lane = self._wrr.pick(ready)
        return None if lane is None else self._queues[lane].popleft()

    def queued(self, lane: Lane) -> tuple[LaneRecord, ...]:
        """A copy of one lane's queue, oldest first (diagnostics and tests)."""
        return tuple(self._queues[lane])

    def holds_partition(self, lane: Lane, partition: int, *, topic: str | None = None) -> bool:
        """A record of ``partition`` (of ``topic``, when given: multi-tenant layouts have a
        topic per tenant and lane) is queued on ``lane`` (no copy of the queue)."""
        return any(
            r.partition == partition and (topic is None or r.topic == topic)
            for r in self._queues[lane]
        )

    def below_low_watermark(self, lane: Lane) -> bool:
        return len(self._queues[lane]) <= self._config.limits(lane).low_watermark

    def drop(self, predicate: Callable[[LaneRecord], bool]) -> list[LaneRecord]:
        """Remove (and return) queued records matching ``predicate``, keeping order;
        used when partitions are revoked and their records belong to another owner."""
        dropped: list[LaneRecord] = []
        for lane, queue in self._queues.items():
            kept = deque[LaneRecord]()
            for record in queue:
                (dropped if predicate(record) else kept).append(record)
            self._queues[lane] = kept
        return dropped
