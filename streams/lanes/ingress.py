"""Kafka ingress of the three lanes: consumer(s) → routing → bounded lane queues.

Two shapes, both with bounded prefetch and per-partition ``pause()/resume()``:

* ``IngressMode.SHARED`` — one group consumer subscribed to control, data and
  telemetry. Control shares the fetch queue with data; only the prefetch bound
  and pausing limit how much data a control record can sit behind.
* ``IngressMode.DEDICATED_CONTROL`` — the group consumer reads data and
  telemetry; a second consumer ``assign()``s the control partitions with the
  same numbers (co-partitioning), following every rebalance. Control has its own
  fetch queue, so buffered data can never be ahead of it.

Records are dispatched through :class:`LaneScheduler`; a record's lane is its topic's.
The commit position of a partition advances only over records dispatched or shed (the
processor decides, for each dispatched record, whether it is applied or dead-lettered), so the
processor can hand :meth:`LaneIngress.positions` to ``send_offsets_to_transaction``
together with :meth:`LaneIngress.group_metadata`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from streams.config import kafka_settings
from streams.lanes.config import LaneConfig
from streams.lanes.errors import IngressError, LaneConfigError
from streams.lanes.offsets import OffsetTracker
from streams.lanes.records import Headers, LaneRecord, session_hint, tenant_hint
from streams.lanes.scheduler import LaneScheduler
from streams.lanes.shedding import ShedDecision
from streams.topics import Lane, TopicLayout

__all__ = ["DEFAULT_INGRESS_MODE", "IngressMode", "LaneIngress", "PartitionsCallback"]

TP = tuple[str, int]
PartitionsCallback = Callable[[list[TP]], None]


class IngressMode(StrEnum):
    SHARED = "shared"
    DEDICATED_CONTROL = "dedicated-control"


# Chosen by bench/lanes_bench.py (2-core box, data lane saturated, 1000 probes):
# dedicated control consumer p50 0.42 ms / p99 3.3 ms, shared consumer with bounded
# prefetch p50 0.46 ms / p99 8.9 ms, single-topic FIFO p99 8.9 s. The shared shape
# only gets close because of fetch.queue.backoff.ms tuning (with librdkafka's 1 s
# default its p50 was 500 ms); the dedicated one has its own fetch queue, so no
# prefetch setting can put data in front of a cancel.
DEFAULT_INGRESS_MODE = IngressMode.DEDICATED_CONTROL


class LaneIngress:
    """Owns the lane consumer(s); call :meth:`poll` and :meth:`next` from one thread."""

    def __init__(
        self,
        *,
        bootstrap: str,
        group_id: str,
        layout: TopicLayout,
        on_shed: Callable[[ShedDecision], None] | None = None,
        on_assigned: PartitionsCallback | None = None,
        on_revoked: PartitionsCallback | None = None,
        config: LaneConfig | None = None,
        mode: IngressMode = DEFAULT_INGRESS_MODE,
        consumer_settings: Mapping[str, Any] | None = None,
        idle_slice: float = 0.005,
    ) -> None:
        self._config = config or LaneConfig()
        if self._config.shedding is not None and on_shed is None:
            raise LaneConfigError(
                "a shed policy needs an on_shed callback: nothing is dropped silently"
            )
        self._layout = layout
        self._mode = mode
        self._on_shed = on_shed
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._idle_slice = idle_slice
        self._scheduler = LaneScheduler(self._config)
        self._tracker = OffsetTracker()
        self._batch = self._config.poll_batch
        self._assigned: set[TP] = set()
        self._blocked: dict[TP, set[Lane]] = {}  # paused partition -> lanes that are full
        # Partitions whose last fetch reached the end (librdkafka's partition EOF event):
        # nothing more was in the log when we last looked. Cleared by the next record.
        self._at_end: set[TP] = set()
        # Multi-tenant layouts have one set of lanes per tenant; the topic says both.
        self._lane_of_topic: dict[str, Lane] = {}
        self._tenant_of_topic: dict[str, str] = {}
        for topic in layout.lane_topics():
            lane = layout.lane_of(topic)
            assert lane is not None  # lane_topics() lists lane topics only
            self._lane_of_topic[topic] = lane
            owner = layout.tenant_of(topic)
            if owner is not None:
                self._tenant_of_topic[topic] = owner
        self._control_topics = layout.lane_topics(Lane.CONTROL)
        settings: dict[str, Any] = {
            **kafka_settings(bootstrap),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            # Range assigns equal partition numbers of equally-partitioned topics to
            # one member: the co-partitioning a session's three lanes rely on.
            "partition.assignment.strategy": "range",
            "enable.partition.eof": True,  # tells lane_idle() a partition is caught up
            **self._config.prefetch.consumer_settings(),
            **(consumer_settings or {}),
        }
        self._main = Consumer(settings)
        self._control: Any = None
        if mode is IngressMode.DEDICATED_CONTROL:
            # Same group id so committed control offsets are found; assign() only,
            # never subscribe(): it is not a group member and cannot steal partitions.
            self._control = Consumer({**settings, "client.id": f"{group_id}.control"})
            # Connect and learn the control topic's leaders now: the first cancel after
            # an assignment must not wait for a cold connection and metadata lookup.
            with contextlib.suppress(KafkaException):
                for topic in self._control_topics:
                    self._control.list_topics(topic=topic, timeout=5)
            topics = [*layout.lane_topics(Lane.DATA), *layout.lane_topics(Lane.TELEMETRY)]
        else:
            topics = list(layout.lane_topics())
        # An exception escaping a librdkafka callback surfaces from consume() as a SystemError
        # (confluent-kafka-python #865) that hides it: callbacks keep theirs for _consume.
        self._callback_error: BaseException | None = None
        self._main.subscribe(
            topics,
            on_assign=self._kept(self._assign_cb),
            on_revoke=self._kept(self._revoke_cb),
            on_lost=self._kept(self._revoke_cb),
        )

    # -- what the processor calls -------------------------------------------------

    @property
    def scheduler(self) -> LaneScheduler:
        return self._scheduler

    def poll(self, timeout: float = 0.0) -> int:
        """Move fetched records into the lane queues; wait up to ``timeout`` seconds
        only if nothing is fetched and nothing is queued for dispatch. Returns how many
        records were taken in (dispatchable or shed)."""
        taken = self._poll_once(0.0)
        if taken or len(self._scheduler):
            return taken
        deadline = time.monotonic() + timeout
        while taken == 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            taken = self._poll_once(remaining)
        return taken

    def next(self) -> LaneRecord | None:
        """Dispatch the next record (control first); it now counts as handled."""
        record = self._scheduler.next()
        if record is None:
            return None
        self._tracker.handled(record.topic, record.partition, record.offset)
        if self._scheduler.below_low_watermark(record.lane):
            self._resume_lane(record.lane)
        return record

    def control_waiting(self) -> bool:
        """True when a control record is queued (the processor then breaks off other work)."""
        return self._scheduler.depth(Lane.CONTROL) > 0

    def lane_idle(self, topic: str, partition: int) -> bool:
        """Lane ``topic``'s ``partition`` is caught up: its last fetch reached the end of the
        log and nothing of it is queued here."""
        tp = (topic, partition)
        lane = self._lane_of_topic.get(topic)
        if lane is None or tp not in self._at_end or tp in self._blocked:
            return False
        return not self._scheduler.holds_partition(lane, partition, topic=topic)

    def positions(self) -> list[TopicPartition]:
        """Next offset to commit per partition (last handled + 1, never past a queued record)."""
        return [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in sorted(self._tracker.positions().items())
        ]

    def commit(self, offsets: list[TopicPartition]) -> None:
        """Commit ``offsets`` outside a transaction (the processor's non-transactional mode)."""
        self._main.commit(offsets=offsets, asynchronous=False)

    def group_metadata(self) -> Any:
        """For ``Producer.send_offsets_to_transaction``; covers control partitions too."""
        return self._main.consumer_group_metadata()

    def assignment(self) -> frozenset[TP]:
        return frozenset(self._assigned)

    def paused(self) -> frozenset[TP]:
        return frozenset(self._blocked)

    def close(self) -> None:
        try:
            self._main.close()  # runs the revoke callback: queues are dropped, processor told
        finally:
            if self._control is not None:
                self._control.close()
        self._raise_kept()

    def __enter__(self) -> LaneIngress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- polling ------------------------------------------------------------------

    def _poll_once(self, timeout: float) -> int:
        if self._control is None:
            return self._consume(self._main, timeout)
        # Wait on the control consumer (the latency-critical one) and only peek at
        # data, so a blocking wait never sits on the data queue while a cancel waits.
        taken = self._consume(self._control, min(timeout, self._idle_slice))
        return taken + self._consume(self._main, 0.0)

    def _kept(
        self, callback: Callable[[Any, list[TopicPartition]], None]
    ) -> Callable[[Any, list[TopicPartition]], None]:
        def run(consumer: Any, partitions: list[TopicPartition]) -> None:
            if self._callback_error is not None:
                return  # the processor is stopping on the first one
            try:
                callback(consumer, partitions)
            except BaseException as exc:
                self._callback_error = exc

        return run

    def _raise_kept(self) -> None:
        exc, self._callback_error = self._callback_error, None
        if exc is not None:
            raise exc

    def _consume(self, consumer: Any, timeout: float) -> int:
        try:
            messages: list[Any] = consumer.consume(num_messages=self._batch, timeout=timeout)
        except SystemError:
            if self._callback_error is None:
                raise
            messages = []
        self._raise_kept()
        rewound: set[TP] = set()
        taken = len(messages)
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    taken -= 1
                    if (msg.topic(), msg.partition()) not in rewound:  # not read: not at the end
                        self._at_end.add((msg.topic(), msg.partition()))
                else:
                    self._error(msg, err)
                continue
            tp: TP = (msg.topic(), msg.partition())
            self._at_end.discard(tp)
            if tp in rewound:
                continue  # re-read after the seek; keeping it would reorder the partition
            if not self._ingest(msg, tp):
                rewound.add(tp)
        return taken

    def _error(self, msg: Any, err: KafkaError) -> None:
        if err.fatal() or err.code() == KafkaError._FATAL:
            raise IngressError(
                f"fatal consumer error on {msg.topic()}[{msg.partition()}]: {err.str()}"
            )
        # Anything else librdkafka retries by itself (broker down, leader moved).

    def _ingest(self, msg: Any, tp: TP) -> bool:
        topic, partition = tp
        offset: int = msg.offset()
        raw_headers = msg.headers()
        headers: Headers = tuple(raw_headers) if raw_headers else ()
        ts: int = msg.timestamp()[1]
        lane = self._lane_of_topic[topic]
        record = LaneRecord(
            lane=lane,
            session=session_hint(headers),
            tenant=self._tenant_of_topic.get(topic) or tenant_hint(headers),
            topic=topic,
            partition=partition,
            offset=offset,
            key=msg.key(),
            value=msg.value(),
            headers=headers,
            timestamp_ms=ts,
        )
        offer = self._scheduler.offer(record)
        if not offer.accepted:
            # Full and not sheddable: stop the partition and read this record again
            # once the lane has drained. Nothing is dropped, nothing reordered.
            self._pause_lane(lane, extra=tp)
            self._consumer_for(topic).seek(TopicPartition(topic, partition, offset))
            return False
        self._tracker.fetched(topic, partition, offset)
        for decision in offer.shed:
            for pos in decision.offsets:
                self._tracker.handled(pos.topic, pos.partition, pos.offset)
            assert self._on_shed is not None  # checked in __init__
            self._on_shed(decision)
        if offer.at_high_watermark and not self._config.sheds(lane):
            self._pause_lane(lane, extra=tp)
        return True

    # -- backpressure -------------------------------------------------------------

    def _consumer_for(self, topic: str) -> Any:
        if self._control is not None and self._lane_of_topic.get(topic) is Lane.CONTROL:
            return self._control
        return self._main

    def _pause_lane(self, lane: Lane, *, extra: TP) -> None:
        targets = {tp for tp in self._assigned if self._lane_of_topic.get(tp[0]) is lane}
        targets.add(extra)  # a record whose header lane differs from its topic's
        newly: list[TP] = []
        # Pausing drops what librdkafka prefetched: an earlier end-of-partition no longer holds.
        self._at_end.difference_update(targets)
        for tp in sorted(targets):
            reasons = self._blocked.setdefault(tp, set())
            if not reasons:
                newly.append(tp)
            reasons.add(lane)
        for tp in newly:
            self._consumer_for(tp[0]).pause([TopicPartition(*tp)])

    def _resume_lane(self, lane: Lane) -> None:
        ready: list[TP] = []
        for tp, reasons in self._blocked.items():
            if lane in reasons:
                reasons.discard(lane)
                if not reasons:
                    ready.append(tp)
        for tp in sorted(ready):
            del self._blocked[tp]
            self._consumer_for(tp[0]).resume([TopicPartition(*tp)])

    # -- rebalancing --------------------------------------------------------------

    def _mirror(self, partitions: list[TopicPartition]) -> list[TP]:
        tps = [(p.topic, p.partition) for p in partitions]
        if self._control is not None:
            numbers = sorted({number for _, number in tps})
            tps += [(topic, number) for topic in self._control_topics for number in numbers]
        return sorted(set(tps))

    def _assign_cb(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        tps = self._mirror(partitions)
        self._assigned.update(tps)
        self._tracker.assign(tps)
        if self._control is not None:
            self._sync_control()
        if self._on_assigned is not None:
            self._on_assigned(tps)

    def _revoke_cb(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        tps = self._mirror(partitions)
        # The processor commits what it has handled before the partitions go.
        if self._on_revoked is not None:
            self._on_revoked(tps)
        gone = set(tps)
        self._scheduler.drop(lambda r: (r.topic, r.partition) in gone)
        self._tracker.revoke(tps)
        for tp in tps:
            self._blocked.pop(tp, None)
            self._at_end.discard(tp)
        self._assigned.difference_update(tps)
        if self._control is not None:
            self._sync_control()
        for lane in Lane:
            if self._scheduler.below_low_watermark(lane):
                self._resume_lane(lane)

    def _sync_control(self) -> None:
        mine = sorted(tp for tp in self._assigned if tp[0] in self._control_topics)
        if not mine:
            self._control.unassign()
            return
        # Explicit start offsets: an assign() without them makes the control consumer
        # look its offsets up itself, which delayed its first fetch by about a second.
        try:
            committed = self._main.committed([TopicPartition(*tp) for tp in mine], timeout=5)
        except KafkaException:
            committed = [TopicPartition(*tp) for tp in mine]
        start = [
            TopicPartition(
                tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            )
            for tp in committed
        ]
        self._control.assign(start)
