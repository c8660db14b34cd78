"""Transactional egress: log records and consumed offsets commit together (exactly once).

One transactional producer per processor (KIP-447 style): the consumer's group
metadata goes into ``send_offsets_to_transaction``, so a zombie whose group
generation is stale cannot commit, and its open transaction is aborted by the
broker. Everything the processor appends — lifecycle markers, outputs, leases,
sheds, DLQ records — goes through :meth:`TransactionalEgress.append`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from streams.config import kafka_settings
from streams.observability.observer import NO_OBSERVER, Observer
from streams.runtime.errors import FencedError, ProcessorError
from streams.topics import OUTPUT_MAX_RECORD_BYTES

__all__ = [
    "EgressConfig",
    "EgressStats",
    "RecordSink",
    "TransactionalEgress",
    "quiet_kafka_logger",
]

_log = logging.getLogger("rspp.egress")

# librdkafka repeats these for every connection attempt while a broker is away (several
# lines per client per second); they drown everything else on the processor's stderr.
_CONNECTION_NOISE = ("Connection refused", "Disconnected", "brokers are down", "Connect to ipv4")


class _DropConnectionNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in _CONNECTION_NOISE)


def quiet_kafka_logger(name: str) -> logging.Logger:
    """A ``logger`` for librdkafka clients: its lines on stderr minus the connection noise."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.addFilter(_DropConnectionNoise())
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    return logger


_FENCING_CODES = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.FENCED_INSTANCE_ID,
    }
)

# The group refused the offsets of a member whose generation is gone; the producer itself
# is intact (its transaction is abortable). Not fatal for the producer, but it must not
# commit: whether it is a zombie depends on who holds the partitions now.
_MEMBERSHIP_CODES = frozenset({KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION})


class RecordSink(Protocol):
    """Where :class:`~streams.runtime.writer.EventWriter` appends records.

    :class:`TransactionalEgress` in the processor; an in-memory list in tests and
    tools that drive the Kafka-free turn engine directly.
    """

    def append(
        self,
        topic: str,
        *,
        partition: int,
        key: bytes | str | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None: ...


@dataclass(frozen=True, kw_only=True)
class EgressConfig:
    bootstrap: str
    transactional_id: str
    commit_interval_ms: int = 100
    # A transaction holding a control event's effect commits this soon (bounds the extra
    # commits a burst of cancels can cause to one per this many ms).
    urgent_commit_ms: int = 5
    max_records_per_txn: int = 2000
    transaction_timeout_ms: int = 30000
    linger_ms: int = 2
    # Bound every transactional call: a broker that went away must surface as an error
    # (the supervisor then restarts from the committed state), never as a hang.
    call_timeout_s: float = 10.0
    # False: an idempotent producer, no transactions (at-least-once). Only for measuring
    # what transactions cost (bench/runtime_bench.py); ``rspp run`` always uses them.
    transactional: bool = True
    observer: Observer = NO_OBSERVER  # told of every commit (with its duration) and abort


@dataclass(slots=True)
class EgressStats:
    transactions: int = 0
    records: int = 0
    aborted: int = 0
    commit_ms_total: float = 0.0


class TransactionalEgress:
    """Append records inside a transaction; commit them with the consumed offsets."""

    def __init__(self, config: EgressConfig) -> None:
        self.config = config
        quiet = quiet_kafka_logger("rspp.kafka.producer")
        settings: dict[str, Any] = {
            **kafka_settings(config.bootstrap),
            "linger.ms": config.linger_ms,
            "enable.idempotence": True,
            "acks": "all",
            # Dead letters and recorded inputs wrap ingress records of up to the lanes' limit.
            "message.max.bytes": OUTPUT_MAX_RECORD_BYTES,
            "logger": quiet,
        }
        if config.transactional:
            settings["transactional.id"] = config.transactional_id
            settings["transaction.timeout.ms"] = config.transaction_timeout_ms
        self._producer = Producer(settings)
        self._in_txn = False  # without transactions: a batch is open (records since the last flush)
        self._pending = 0
        self._opened_at = 0.0
        # Set when a librdkafka call overstayed its timeout and is still blocked in a
        # thread: this producer must not be used again (the supervisor replaces it).
        self._wedged: str | None = None
        self.stats = EgressStats()
        if config.transactional:
            self._call(lambda: self._producer.init_transactions(self.config.call_timeout_s))

    @property
    def transactional(self) -> bool:
        return self.config.transactional

    # -- appending -------------------------------------------------------------
    def append(
        self,
        topic: str,
        *,
        partition: int,
        key: bytes | str | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Add one record to the open transaction (opened on demand)."""
        if not self._in_txn:
            if self.config.transactional:
                self._call(self._producer.begin_transaction)
            self._in_txn = True
            self._opened_at = time.monotonic()
        while True:
            try:
                self._producer.produce(
                    topic, value, key=key, partition=partition, headers=list(headers)
                )
                break
            except BufferError:
                self._producer.poll(0.01)
            except KafkaException as exc:
                self._raise(exc)
        self._pending += 1
        self.stats.records += 1

    @property
    def in_transaction(self) -> bool:
        return self._in_txn

    def due(self, *, urgent: bool = False) -> bool:
        """True when the open transaction should be committed now.

        ``urgent``: it holds the effect of a control event (a barge-in's TURN_ABORT), which
        read_committed consumers (the transport that stops playback) see only at commit;
        commit after ``urgent_commit_ms`` instead of the full interval.
        """
        if not self._in_txn:
            return False
        age_ms = (time.monotonic() - self._opened_at) * 1000.0
        interval = self.config.commit_interval_ms
        if urgent:
            interval = min(interval, self.config.urgent_commit_ms)
        return age_ms >= interval or self._pending >= self.config.max_records_per_txn

    # -- committing ------------------------------------------------------------
    def commit(self, offsets: Sequence[TopicPartition], group_metadata: Any) -> None:
        """Commit the open transaction together with ``offsets`` (next offsets to read).

        ``group_metadata`` is the consuming group member's ``consumer_group_metadata()``:
        the broker refuses the offsets of a member whose generation is stale (a zombie).
        Without transactions this only flushes: the caller commits ``offsets`` afterwards.
        """
        if not self.config.transactional:
            started = time.perf_counter()
            self._producer.flush(30)
            self.stats.transactions += 1
            self.stats.commit_ms_total += (time.perf_counter() - started) * 1000.0
            self.config.observer.transaction(committed=True, seconds=time.perf_counter() - started)
            self._in_txn = False
            self._pending = 0
            return
        if not self._in_txn:
            if not offsets:
                return
            self._call(self._producer.begin_transaction)
            self._in_txn = True
        started = time.perf_counter()
        if offsets:
            self._call(
                lambda: self._bounded(
                    "send_offsets_to_transaction",
                    lambda: self._producer.send_offsets_to_transaction(
                        list(offsets), group_metadata, self.config.call_timeout_s
                    ),
                )
            )
        self._call(lambda: self._producer.commit_transaction(self.config.call_timeout_s))
        self.stats.transactions += 1
        self.stats.commit_ms_total += (time.perf_counter() - started) * 1000.0
        self.config.observer.transaction(committed=True, seconds=time.perf_counter() - started)
        self._in_txn = False
        self._pending = 0

    def abort(self) -> None:
        """Abort the open transaction (its records stay invisible to read_committed readers)."""
        if not self._in_txn or not self.config.transactional or self._wedged:
            return
        try:
            self._producer.abort_transaction(self.config.call_timeout_s)
        except KafkaException as exc:
            _log.warning("abort_transaction failed: %s", exc)
        self.stats.aborted += 1
        self.config.observer.transaction(committed=False, seconds=0.0)
        self._in_txn = False
        self._pending = 0

    def poll(self) -> None:
        self._producer.poll(0)

    def close(self) -> None:
        if self._wedged:
            return  # a call is still blocked inside this producer: leave it to its thread
        self.abort()
        self._producer.flush(5)

    # -- errors ----------------------------------------------------------------
    def _bounded(self, what: str, fn: Any) -> Any:
        """Run a blocking librdkafka call in a daemon thread and stop waiting after its timeout.

        ``send_offsets_to_transaction`` ignores its timeout while the group coordinator
        is unreachable or was just restarted (librdkafka #5456, #5511): after a broker
        restart it blocked the processor for minutes. The call cannot be interrupted; we
        stop waiting, mark this producer wedged and raise, so the supervisor discards it
        and a new processor (same transactional id: it fences this producer) takes over.
        """
        result: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                result["value"] = fn()
            except BaseException as exc:  # re-raised in the caller's thread
                result["error"] = exc
            finally:
                done.set()

        threading.Thread(target=target, name=f"rspp-egress-{what}", daemon=True).start()
        if not done.wait(self.config.call_timeout_s + 2.0):
            self._wedged = what
            self._in_txn = False
            raise ProcessorError(
                f"egress failed: {what} did not return within {self.config.call_timeout_s:.0f}s "
                "(broker or group coordinator unreachable)"
            )
        if "error" in result:
            raise result["error"]
        return result.get("value")

    def _call(self, fn: Any) -> Any:
        if self._wedged:
            raise ProcessorError(f"egress failed: a {self._wedged} call is still blocked")
        try:
            return fn()
        except KafkaException as exc:
            self._raise(exc)

    def _raise(self, exc: KafkaException) -> None:
        err = exc.args[0] if exc.args else None
        code = err.code() if isinstance(err, KafkaError) else None
        if code in _FENCING_CODES or (isinstance(err, KafkaError) and err.fatal()):
            self._in_txn = False
            raise FencedError(
                f"producer {self.config.transactional_id} was fenced: {err}",
                membership_lost=code in _MEMBERSHIP_CODES
                and not (isinstance(err, KafkaError) and err.fatal()),
            ) from None
        if isinstance(err, KafkaError) and err.txn_requires_abort():
            self.abort()
            raise ProcessorError(f"transaction aborted: {err}") from None
        raise ProcessorError(f"egress failed: {err}") from None
