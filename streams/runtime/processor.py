"""`rspp run`: lanes in, turn engine, exactly-once log out.

One asyncio loop: poll the lanes (control first), apply each record to the
turn engine, turn node reports into events, and every ~100 ms commit the
transaction together with the consumed offsets. On partition assignment the
processor takes a new lease epoch and restores its sessions from the
changelog; on revocation it commits and forgets them. A fenced producer
stops the processor: a zombie must not write.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from pipelines.models.compat import VersionSkewPolicy
from pipelines.models.resolved import PipelineBundle
from pipelines.store import ArtifactStore, default_store_root
from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.abi.events import Envelope, LeaseGranted, SessionClose
from streams.abi.registry import SchemaRegistry
from streams.abi.version import ABI_VERSION
from streams.lanes import (
    DEFAULT_INGRESS_MODE,
    IngressMode,
    LaneConfig,
    LaneIngress,
    LaneLimits,
    LaneRecord,
    LaneWeights,
    RejectedRecord,
    ShedDecision,
)
from streams.nodes import NodeRegistry, default_registry
from streams.observability.observer import NO_OBSERVER, Observer, RuntimeSample
from streams.runtime.closing import CloseBarrier, HeldClose, HeldCloses
from streams.runtime.egress import EgressConfig, TransactionalEgress, quiet_kafka_logger
from streams.runtime.engine import TurnEngine
from streams.runtime.errors import FencedError, LifecycleError, ProcessorError
from streams.runtime.graphs import GraphCache
from streams.runtime.held import shed_policy
from streams.runtime.ingress_gate import IngressGate
from streams.runtime.ingress_skew import IngressSkewGate
from streams.runtime.leases import LeaseBook, read_latest_epochs
from streams.runtime.sessions import SessionKey, SessionState, micros, read_session_snapshots
from streams.runtime.stats import EngineStats
from streams.runtime.writer import EventWriter
from streams.topics import OUTPUT_MAX_RECORD_BYTES, Lane, TopicLayout

# Records dispatched and node reports logged per loop step (then commits, expiry and the
# turn tasks get their turn), and the chunk of either after which the loop looks for newly
# arrived control records before going on.
_DISPATCH_PER_STEP = 256
_REPORTS_PER_STEP = 512
_CHUNK = 32

__all__ = ["Processor", "ProcessorConfig", "lane_config_for"]

_log = logging.getLogger("rspp.processor")


@dataclass(frozen=True, kw_only=True)
class ProcessorConfig:
    bootstrap: str
    prefix: str
    bundle: PipelineBundle
    # Multi-tenant: each tenant writes its own lane topics P.<tenant>.<lane>, and a record's
    # tenant is its topic's (a body naming another tenant is dead-lettered).
    tenants: tuple[str, ...] = ()
    group_id: str | None = None
    processor_id: str | None = None
    commit_interval_ms: int = 100
    ingress_mode: IngressMode = DEFAULT_INGRESS_MODE
    max_frame_bytes: int = 1 << 20
    drain_grace_s: float | None = None
    session_gate: Callable[[PipelineBundle], str | None] | None = None
    registry: NodeRegistry | None = None
    store: Path | None = None
    # Group liveness: how long a silent member (crashed, paused) keeps its partitions.
    session_timeout_ms: int | None = None
    # Static membership (KIP-345): the holder name is the group.instance.id, so a
    # restarted processor with the same --id gets its partitions back at once.
    static_membership: bool = False
    # Ingress frames written with an Event ABI outside this policy's window go to the DLQ.
    skew_policy: VersionSkewPolicy | None = None
    schema_registry: SchemaRegistry | None = None  # default: RSPP_SCHEMA_REGISTRY_URL or avro/
    # False only to measure what exactly-once costs (bench): at-least-once, no fencing.
    transactional: bool = True
    # How long the broker keeps a dead writer's open transaction (it blocks read_committed
    # readers of the log, sessions and leases until then): the failover time when a
    # crashed processor does not come back under the same --id. Kafka Streams' EOS default.
    transaction_timeout_ms: int = 10_000
    # How long a SESSION_CLOSE waits for the data the service sent before it (closing.py).
    close_barrier: CloseBarrier = field(default_factory=CloseBarrier)
    # Metrics and traces (streams.observability); the default does nothing and costs nothing.
    observer: Observer = NO_OBSERVER

    @property
    def group(self) -> str:
        return self.group_id or f"rspp-{self.prefix}"

    @property
    def holder(self) -> str:
        return self.processor_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def consumer_settings(self, holder: str) -> dict[str, Any]:
        """Group-membership settings for the lane consumers (librdkafka names)."""
        settings: dict[str, Any] = {"logger": quiet_kafka_logger("rspp.kafka.consumer")}
        if self.session_timeout_ms is not None:
            settings["session.timeout.ms"] = self.session_timeout_ms
            settings["heartbeat.interval.ms"] = max(100, self.session_timeout_ms // 4)
        if self.static_membership:
            if self.processor_id is None:
                raise ValueError("static membership needs a fixed processor_id (rspp run --id)")
            settings["group.instance.id"] = holder
        return settings


def lane_config_for(bundle: PipelineBundle) -> LaneConfig:
    """Lane queues, weights and the shed rule as the bundle's resolved spec says."""
    spec = bundle.resolved_spec
    lanes = spec.lanes

    def limits(capacity: int) -> LaneLimits:
        capacity = max(4, capacity)
        return LaneLimits(
            capacity=capacity,
            high_watermark=max(2, capacity * 3 // 4),
            low_watermark=max(1, capacity // 4),
        )

    return LaneConfig(
        control=limits(lanes.control_queue_max_items.value),
        data=limits(lanes.data_queue_max_items.value),
        telemetry=limits(lanes.telemetry_queue_max_items.value),
        weights=LaneWeights(data=lanes.data_weight.value, telemetry=lanes.telemetry_weight.value),
        shedding=shed_policy(bundle),
    )


class Processor:
    """Consumes a prefix's lanes and appends the turn log, exactly once."""

    def __init__(self, config: ProcessorConfig) -> None:
        self.config = config
        self.holder = config.holder
        # Publish the bundle we run: replay, export and audit find it by digest in the store,
        # and so does the next processor of a session pinned to it.
        store = ArtifactStore(config.store or default_store_root())
        store.archive_bundle(config.bundle)
        self.layout = TopicLayout(prefix=config.prefix, partitions=1, tenants=config.tenants)
        self.codec = EventCodec(
            registry=config.schema_registry,
            max_frame_bytes=config.max_frame_bytes,
            source=f"urn:rspp:processor:{self.holder}",
        )
        self.leases = LeaseBook(self.holder)
        self.gate = IngressGate(
            codec=self.codec,
            layout=self.layout,
            leases=self.leases,
            skew=None
            if config.skew_policy is None
            else IngressSkewGate(
                policy=config.skew_policy,
                registry=self.codec.registry,
                subject=self.codec.subject,
                runtime_abi=ABI_VERSION,
                own_schema_id=self.codec.schema_id,
            ),
        )
        self.egress = TransactionalEgress(
            EgressConfig(
                bootstrap=config.bootstrap,
                transactional_id=f"{config.group}.{self.holder}",
                commit_interval_ms=config.commit_interval_ms,
                transaction_timeout_ms=config.transaction_timeout_ms,
                transactional=config.transactional,
                observer=config.observer,
            )
        )
        # The writer's frames wrap ingress frames (dead letters, recorded inputs): its limit is
        # the output topics' record limit, less room for key and headers.
        out_codec = self.codec.with_limit(OUTPUT_MAX_RECORD_BYTES - (64 << 10))
        self.writer = EventWriter(
            layout=self.layout,
            codec=out_codec,
            egress=self.egress,
            leases=self.leases,
            observer=config.observer,
        )
        self.engine = TurnEngine(
            writer=self.writer,
            bundle=config.bundle,
            graphs=GraphCache(config.registry or default_registry()),
            processor_id=self.holder,
            prefix=config.prefix,
            session_gate=config.session_gate,
            load_bundle=store.get_bundle,
            observer=config.observer,
        )
        self.engine.prewarm()
        # Everything loaded so far (bundle models, node models, codecs) lives as long as the
        # processor: keep it out of the cyclic GC, whose full passes over it took 20–50 ms of
        # the loop (a cancel waited behind them).
        gc.collect()
        gc.freeze()
        self.records_handled = 0  # dispatched lane records, each applied or dead-lettered
        self.dlq_count = 0
        self.dlq_reasons: dict[str, int] = {}
        self.closes = HeldCloses(barrier=config.close_barrier)
        self._fenced: FencedError | None = None
        # A control record was handled since the last commit: commit soon (EgressConfig).
        self._control_pending = False
        # Highest lease epoch this processor was granted per partition (kept after a
        # revocation): a newer committed epoch means another holder took it over.
        self._granted: dict[int, int] = {}
        self.ingress = LaneIngress(
            bootstrap=config.bootstrap,
            group_id=config.group,
            layout=self.layout,
            on_shed=self._on_shed,
            on_assigned=self._on_assigned,
            on_revoked=self._on_revoked,
            config=lane_config_for(config.bundle),
            mode=config.ingress_mode,
            consumer_settings=config.consumer_settings(self.holder),
        )

    @property
    def stats(self) -> EngineStats:
        return self.engine.stats

    # -- main loop -------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> EngineStats:
        """Run until ``stop`` is set, then drain: finish or abort open turns, commit, leave the group."""
        try:
            while not stop.is_set():
                busy = self._step()
                await asyncio.sleep(0 if busy else 0.002)
            await self._drain()
        finally:
            self._close()
        return self.engine.stats

    def _step(self) -> bool:
        if self._fenced is not None:
            raise self._fenced
        self.ingress.poll(0.0)
        dispatched = self._dispatch(_DISPATCH_PER_STEP)
        handled = 0
        while handled < _REPORTS_PER_STEP:
            n = self._guard(lambda: self.engine.drain_reports(limit=_CHUNK))
            handled += n if isinstance(n, int) else 0
            if n != _CHUNK:
                break
            dispatched += self._control_now()
        self._guard(self.engine.expire_turns)
        for held in self.closes.due(data_idle=self._data_idle):
            self._release_close(held)
        if self.egress.due(urgent=self._control_pending):
            self._commit()
        return bool(dispatched or handled)

    def _dispatch(self, limit: int) -> int:
        dispatched = 0
        while dispatched < limit:
            record = self.ingress.next()
            if record is None:
                break
            self._handle(record)
            dispatched += 1
            if dispatched % _CHUNK == 0:
                dispatched += self._control_now()
        return dispatched

    def _control_now(self) -> int:
        """Fetch again and dispatch the control records that came in. Called between chunks of
        other work: a cancel must not wait behind a step's worth of turn starts and outputs."""
        self.ingress.poll(0.0)
        dispatched = 0
        while self.ingress.control_waiting():
            record = self.ingress.next()
            if record is None:
                break
            self._handle(record)
            dispatched += 1
        return dispatched

    async def _drain(self) -> None:
        self.engine.start_draining()
        grace = self.config.drain_grace_s
        if grace is None:
            grace = self.config.bundle.resolved_spec.admission.drain_grace_ms.value / 1000.0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.engine.turns and loop.time() < deadline:
            self._guard(self.engine.drain_reports)
            if self.egress.due():
                self._commit()
            await asyncio.sleep(0.005)
        self._guard(lambda: self.engine.abort_all(reason="drain"))
        self._commit()
        await asyncio.sleep(0.05)  # let cancelled turn tasks unwind before the loop closes

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self.config.observer.close()
        with contextlib.suppress(Exception):
            self.ingress.close()
        with contextlib.suppress(Exception):
            self.egress.close()

    # -- records -----------------------------------------------------------------
    def _handle(self, record: LaneRecord) -> None:
        """Apply ``record`` or dead-letter it: every dispatched record gets one outcome."""
        if record.lane is Lane.CONTROL:
            self._control_pending = True
            self.config.observer.control_dispatched(record.timestamp_ms)
        self.records_handled += 1
        admitted = self.gate.admit(record)
        reason = admitted.reason
        if admitted.event is not None and reason is None:
            reason = self._apply(record, admitted.event)
        if reason is not None:
            self._on_rejected(
                _rejected(record, reason), tenant=admitted.tenant, session=admitted.session
            )

    def _apply(self, record: LaneRecord, event: Envelope) -> str | None:
        key = SessionKey.of(event)
        if record.lane is Lane.DATA:
            self.closes.data_seen(record.partition, event, data_topic=record.topic)
        held = self.closes.get(key)
        if held is not None and (
            record.lane is Lane.CONTROL
            or (record.lane is Lane.DATA and micros(event.ts) > held.ts_us)
        ):
            # Control keeps its order; data sent after the close is a reopened session's.
            self.closes.take(key)
            self._release_close(held)
        if isinstance(event.payload, SessionClose) and self._holds_close(event, record.partition):
            self.closes.hold(
                event,
                partition=record.partition,
                record=record,
                data_topic=self._data_topic(event),
            )
            self.engine.mark_dirty(key)  # the snapshot carries it (closing.py)
            return None
        return self._engine_apply(event, record.partition)

    def _engine_apply(self, event: Envelope, partition: int) -> str | None:
        """The engine applies ``event``; an unexpected error fails that session's turn and
        dead-letters the record, never the processor (only process faults stop it)."""
        try:
            return self.engine.apply(event, partition=partition)
        except FencedError as exc:
            self._fenced = exc
            return None
        except Exception as exc:
            if _process_fault(exc):
                raise
            reason = (
                f"internal error applying {event.event_type.value}: {type(exc).__name__}: {exc}"
            )
            _log.exception(
                "session %s/%s: %s", event.tenant_id, event.session_id, reason.splitlines()[0]
            )
            try:
                self.engine.fail_session(SessionKey.of(event), reason=reason)
            except Exception as again:
                if _process_fault(again):
                    raise
                _log.exception(
                    "session %s/%s: its turn could not be aborted",
                    event.tenant_id,
                    event.session_id,
                )
            return reason[:1000]

    def _holds_close(self, event: Envelope, partition: int) -> bool:
        """A close for a live session of this partition waits; any other goes through now
        (the engine dead-letters closes of unknown or closed sessions)."""
        session = self.engine.session(SessionKey.of(event))
        return (
            session is not None
            and not session.closed
            and session.partition == partition
            and event.seq > session.last_seq_by_lane.get(event.lane.value, -1)
        )

    def _release_close(self, held: HeldClose) -> None:
        self.engine.mark_dirty(SessionKey.of(held.event))  # a refused close leaves the snapshot
        reason = self._engine_apply(held.event, held.partition)
        if reason is None:
            return
        if held.record is not None:
            self._on_rejected(
                _rejected(held.record, reason),
                tenant=held.event.tenant_id,
                session=held.event.session_id,
            )
            return
        # Restored from a snapshot: the frame it carried is the original event.
        self._on_rejected(
            self.writer.rejected_event(held.event, reason=reason, partition=held.partition),
            tenant=held.event.tenant_id,
            session=held.event.session_id,
        )

    def _data_idle(self, held: HeldClose) -> bool:
        return self.ingress.lane_idle(held.data_topic, held.partition)

    def _data_topic(self, event: Envelope) -> str:
        """The data lane ``event``'s session writes to ("" when its tenant has none here)."""
        if not self.layout.multi_tenant:
            return self.layout.data
        if event.tenant_id not in self.layout.tenants:
            return ""
        return self.layout.lane_topic(Lane.DATA, event.tenant_id)

    def _on_rejected(
        self, rejected: RejectedRecord, *, tenant: str | None, session: str | None
    ) -> None:
        self.dlq_count += 1
        tag = rejected.reason.split(":")[0][:60]
        self.dlq_reasons[tag] = self.dlq_reasons.get(tag, 0) + 1
        self._guard(lambda: self.writer.dead_letter(rejected, tenant_id=tenant, session_id=session))

    def _on_shed(self, decision: ShedDecision) -> None:
        logged = self._guard(
            lambda: self.engine.shed(
                SessionKey(decision.tenant, decision.session),
                ev.Shed(
                    reason="lane queue full",
                    rule=decision.rule,
                    defaulting_source=decision.defaulting_source,
                    lane=ev.Lane(decision.lane.value),
                    shed_count=decision.count,
                ),
            )
        )
        if not logged:
            # Records of sessions this processor does not know: still never silent.
            for pos in decision.offsets:
                self._on_rejected(
                    RejectedRecord(
                        reason=f"shed ({decision.rule}) for unknown session {decision.session}",
                        topic=pos.topic,
                        partition=pos.partition,
                        offset=pos.offset,
                        key=decision.session.encode(),
                        value=None,
                        headers=(),
                        timestamp_ms=0,
                    ),
                    tenant=self.layout.tenant_of(pos.topic),
                    session=decision.session or None,
                )

    # -- rebalance -------------------------------------------------------------
    def _on_assigned(self, partitions: list[tuple[str, int]]) -> None:
        numbers = {p for _, p in partitions} - set(self.leases.partitions)
        if not numbers:
            return
        epochs = read_latest_epochs(
            self.config.bootstrap, self.layout.leases, numbers, decode_epoch=self._decode_lease
        )
        for p in sorted(numbers):
            lease = self.leases.grant(p, epochs[p])
            self._granted[p] = max(self._granted.get(p, 0), lease.epoch)
            self.writer.lease(lease)
            _log.info(
                "lease granted: partition %d epoch %d holder %s", p, lease.epoch, lease.holder
            )
        for snap in read_session_snapshots(
            self.config.bootstrap, self.layout.sessions, numbers
        ).values():
            # Closed sessions too: a session opened again must continue its seq and turn ids.
            pending = self.writer.pending_of(snap)
            for close in [e for e in pending if isinstance(e.payload, SessionClose)]:
                pending.remove(close)
                self.closes.hold(
                    close,
                    partition=snap.partition,
                    record=None,
                    data_topic=self._data_topic(close),
                )
            self.engine.restore(SessionState.restore(snap), pending=pending)
        # The new epoch must be durable before anything is written under it.
        self._commit(with_offsets=False)

    def _on_revoked(self, partitions: list[tuple[str, int]]) -> None:
        numbers = {p for _, p in partitions} & set(self.leases.partitions)
        if not numbers:
            return
        with contextlib.suppress(FencedError):
            self._commit()
        self.engine.forget_partitions(numbers)
        self.closes.forget_partitions(numbers)
        self.leases.revoke(numbers)

    def taken_over(self) -> bool:
        """True when another holder committed a newer lease epoch on a partition we held.

        Decides whether a processor that lost its group membership is a zombie (it must
        stop) or was only cut off from the broker past the session timeout (nobody took
        its partitions: the supervisor may start afresh from the committed state).
        When the leases cannot be read, it is treated as a zombie: stopping is the safe side.
        """
        if not self._granted:
            return False
        try:
            latest = read_latest_epochs(
                self.config.bootstrap,
                self.layout.leases,
                set(self._granted),
                decode_epoch=self._decode_lease,
            )
        except Exception:  # cannot tell: assume the worst
            _log.warning("could not read the leases to tell a zombie from a cut-off member")
            return True
        return any(latest.get(p, 0) > epoch for p, epoch in self._granted.items())

    def _decode_lease(self, value: bytes) -> tuple[int, int]:
        event: Envelope = self.codec.decode(value)
        payload = event.payload
        if not isinstance(payload, LeaseGranted):
            return (-1, 0)
        return payload.partition, payload.epoch

    # -- transactions ----------------------------------------------------------------
    def _commit(self, *, with_offsets: bool = True) -> None:
        try:
            self.engine.log_sheds()  # drops ride in the transaction that commits their offsets
            for session, held in self.engine.take_dirty():
                self.writer.snapshot(session, pending=(*held, *self.closes.items(session.key)))
            offsets = self.ingress.positions() if with_offsets else []
            self.egress.commit(offsets, self.ingress.group_metadata())
            self._control_pending = False
            if not self.egress.transactional and offsets:
                self.ingress.commit(offsets)
            if self.config.observer.enabled:
                self.config.observer.sample(self._sample())
        except FencedError as exc:
            self._fenced = exc
            raise

    def _sample(self) -> RuntimeSample:
        return RuntimeSample(
            sessions=len(self.engine.sessions),
            open_turns=len(self.engine.turns),
            lane_depth={lane.value: self.ingress.scheduler.depth(lane) for lane in Lane},
            paused_partitions=len(self.ingress.paused()),
        )

    def _guard(self, fn: Callable[[], object]) -> object:
        try:
            return fn()
        except FencedError as exc:
            self._fenced = exc
            return None


def _rejected(record: LaneRecord, reason: str) -> RejectedRecord:
    return RejectedRecord(
        reason=reason,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=record.headers,
        timestamp_ms=record.timestamp_ms,
    )


def _process_fault(exc: BaseException) -> bool:
    """Faults of the process itself (broker, transaction, memory): they stop the processor.
    Anything else raised while applying one record is that record's session's problem."""
    if isinstance(exc, LifecycleError):
        return False
    return isinstance(exc, ProcessorError | KafkaException | BufferError | MemoryError)
