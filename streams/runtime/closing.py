"""The close barrier: a SESSION_CLOSE waits for the data sent before it.

Control has strict priority, so a hang-up sent right after the caller's last words
overtakes them (separate topics, and control is dispatched first). Applied at once,
the close would dead-letter those words instead of giving them a turn. A cancel must
overtake — that is its purpose — but a close is the end of the stream, ordered after
everything the service sent before it (as Pipecat orders an EndFrame behind queued
frames while a CancelFrame jumps the queue).

Lanes are separate partitions, so "sent before" is decided by stream time, as Kafka
Streams synchronises co-partitioned inputs: the close is released once the session's
data partition has been handled more than ``grace_ms`` past the time the close was sent
(the events' own ``ts``, the voice services' clocks; the margin absorbs producers whose
records land out of send order), or, when that partition is caught up (its last fetch
reached the end of the log and nothing of it is queued), after ``grace_ms`` (records
still in flight from the producer land within that window), and in any case after
``max_hold_ms``. A held close is carried in the session snapshot, so a restarted
processor holds it again instead of losing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from streams.abi.events import Envelope
from streams.lanes import LaneRecord
from streams.runtime.sessions import SessionKey, micros

__all__ = ["CloseBarrier", "HeldClose", "HeldCloses"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseBarrier:
    """How long a SESSION_CLOSE may wait for earlier data (milliseconds)."""

    grace_ms: int = 200
    max_hold_ms: int = 5_000


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldClose:
    event: Envelope
    partition: int
    data_topic: str  # the session's data lane (each tenant has its own in a multi-tenant layout)
    ts_us: int  # when the service sent the close: the stream time the data lane must pass
    since: float  # monotonic time it was held
    record: LaneRecord | None  # the original record (None when restored from a snapshot)


@dataclass(slots=True)
class HeldCloses:
    """Closes waiting for their session's data partition, keyed by session."""

    barrier: CloseBarrier = field(default_factory=CloseBarrier)
    clock: Callable[[], float] = time.monotonic
    _held: dict[SessionKey, HeldClose] = field(default_factory=dict)
    # (data topic, partition) -> max data ts seen (µs)
    _data_time: dict[tuple[str, int], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._held)

    def hold(
        self,
        event: Envelope,
        *,
        partition: int,
        record: LaneRecord | None,
        data_topic: str = "",
    ) -> None:
        self._held[SessionKey.of(event)] = HeldClose(
            event=event,
            partition=partition,
            data_topic=data_topic,
            ts_us=micros(event.ts),
            since=self.clock(),
            record=record,
        )

    def get(self, key: SessionKey) -> HeldClose | None:
        return self._held.get(key)

    def take(self, key: SessionKey) -> HeldClose | None:
        return self._held.pop(key, None)

    def items(self, key: SessionKey) -> tuple[Envelope, ...]:
        """The held close of a session as snapshot content (empty when none)."""
        held = self._held.get(key)
        return () if held is None else (held.event,)

    def data_seen(self, partition: int, event: Envelope, *, data_topic: str = "") -> None:
        """A data event of ``partition`` was handled: stream time moves forward."""
        ts = micros(event.ts)
        stream = (data_topic, partition)
        if ts > self._data_time.get(stream, -1):
            self._data_time[stream] = ts

    def due(self, *, data_idle: Callable[[HeldClose], bool]) -> list[HeldClose]:
        """Remove and return the closes whose barrier is passed, oldest first.

        ``data_idle(held)``: the held close's data partition is caught up (its last fetch reached
        the end of the log, nothing of it is queued in process, it is not paused).
        """
        if not self._held:
            return []
        now = self.clock()
        grace = self.barrier.grace_ms / 1000.0
        grace_us = self.barrier.grace_ms * 1000
        limit = self.barrier.max_hold_ms / 1000.0
        idle: dict[tuple[str, int], bool] = {}
        ready: list[HeldClose] = []
        for held in self._held.values():
            waited = now - held.since
            # Later by more than the grace: records of several producers (batching, clock
            # skew) reach a partition out of send order; equal stamps say nothing.
            stream = (held.data_topic, held.partition)
            passed = self._data_time.get(stream, -1) > held.ts_us + grace_us
            if passed or waited >= limit:
                ready.append(held)
            elif waited >= grace:
                if stream not in idle:
                    idle[stream] = data_idle(held)
                if idle[stream]:
                    ready.append(held)
        ready.sort(key=lambda h: (h.since, h.ts_us))
        for held in ready:
            del self._held[SessionKey.of(held.event)]
        return ready

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Partitions moved away: their closes live on in the committed snapshots."""
        gone = set(partitions)
        for key in [k for k, h in self._held.items() if h.partition in gone]:
            del self._held[key]
        for stream in [k for k in self._data_time if k[1] in gone]:
            del self._data_time[stream]
