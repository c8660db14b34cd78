"""Transactional egress: log records and consumed offsets commit together (exactly once).

One transactional producer per processor (KIP-447 style): the consumer's group
metadata goes into ``send_offsets_to_transaction``, so a zombie whose group
generation is stale cannot commit, and its open transaction is aborted by the
broker. Everything the processor appends — lifecycle markers, outputs, leases,
sheds, DLQ records — goes through :meth:`TransactionalEgress.append`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from streams.runtime.errors import FencedError, ProcessorError

__all__ = ["EgressConfig", "EgressStats", "RecordSink", "TransactionalEgress"]

_log = logging.getLogger("rspp.egress")

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
    max_records_per_txn: int = 2000
    transaction_timeout_ms: int = 30000
    linger_ms: int = 2
    # Bound every transactional call: a broker that went away must surface as an error
    # (the supervisor then restarts from the committed state), never as a hang.
    call_timeout_s: float = 10.0
    # False: an idempotent producer, no transactions (at-least-once). Only for measuring
    # what transactions cost (bench/runtime_bench.py); ``rspp run`` always uses them.
    transactional: bool = True


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
        quiet = logging.getLogger("rspp.kafka.producer")
        settings: dict[str, Any] = {
            "bootstrap.servers": config.bootstrap,
            "linger.ms": config.linger_ms,
            "enable.idempotence": True,
            "acks": "all",
            "logger": quiet,
        }
        if config.transactional:
            settings["transactional.id"] = config.transactional_id
            settings["transaction.timeout.ms"] = config.transaction_timeout_ms
        self._producer = Producer(settings)
        self._in_txn = False  # without transactions: a batch is open (records since the last flush)
        self._pending = 0
        self._opened_at = 0.0
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

    def due(self) -> bool:
        """True when the open transaction should be committed now."""
        if not self._in_txn:
            return False
        age_ms = (time.monotonic() - self._opened_at) * 1000.0
        return (
            age_ms >= self.config.commit_interval_ms
            or self._pending >= self.config.max_records_per_txn
        )

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
                lambda: self._producer.send_offsets_to_transaction(
                    list(offsets), group_metadata, self.config.call_timeout_s
                )
            )
        self._call(lambda: self._producer.commit_transaction(self.config.call_timeout_s))
        self.stats.transactions += 1
        self.stats.commit_ms_total += (time.perf_counter() - started) * 1000.0
        self._in_txn = False
        self._pending = 0

    def abort(self) -> None:
        """Abort the open transaction (its records stay invisible to read_committed readers)."""
        if not self._in_txn or not self.config.transactional:
            return
        try:
            self._producer.abort_transaction(self.config.call_timeout_s)
        except KafkaException as exc:
            _log.warning("abort_transaction failed: %s", exc)
        self.stats.aborted += 1
        self._in_txn = False
        self._pending = 0

    def poll(self) -> None:
        self._producer.poll(0)

    def close(self) -> None:
        self.abort()
        self._producer.flush(5)

    # -- errors ----------------------------------------------------------------
    def _call(self, fn: Any) -> Any:
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
                f"producer {self.config.transactional_id} was fenced: {err}"
            ) from None
        if isinstance(err, KafkaError) and err.txn_requires_abort():
            self.abort()
            raise ProcessorError(f"transaction aborted: {err}") from None
        raise ProcessorError(f"egress failed: {err}") from None
