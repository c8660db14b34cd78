"""Helpers for tests of RSPP deployments — importable by replay jobs in other repositories.

- :class:`ProcessorThread` runs a :class:`~streams.runtime.processor.Processor`
  on its own event loop in a background thread (``with ProcessorThread(cfg): …``).
- :func:`read_log` reads a prefix's log (read_committed) into :class:`LoggedEvent` rows.
- :func:`check_log` applies the log contract's invariants and returns the
  problems found (empty = sound): lifecycle order, one plan hash per turn,
  epochs, correlation chain, no output after cancel, no duplicate outputs.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType

from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.runtime.changelog import read_to_end
from streams.runtime.lifecycle import Marker, first_violation
from streams.runtime.processor import Processor, ProcessorConfig
from streams.runtime.stats import EngineStats
from streams.topics import OUTPUT_MAX_RECORD_BYTES, TopicLayout

__all__ = ["LoggedEvent", "ProcessorThread", "check_log", "read_dlq", "read_log"]

_MARKERS = {
    ev.EventType.TURN_OPEN: Marker.OPEN,
    ev.EventType.TURN_ACTIVE: Marker.ACTIVE,
    ev.EventType.TURN_COMMIT: Marker.COMMIT,
    ev.EventType.TURN_ABORT: Marker.ABORT,
    ev.EventType.TURN_CLOSE: Marker.CLOSE,
}
_EGRESS = (ev.EventType.OUTPUT_ACCEPTED, ev.EventType.PLAYBACK_STARTED)


class ProcessorThread:
    """A processor on a background event loop; stopping drains it like SIGTERM does."""

    def __init__(self, config: ProcessorConfig) -> None:
        self.processor = Processor(config)
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self.stats: EngineStats | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="rspp-processor", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.stats = self._loop.run_until_complete(self.processor.run(self._stop))
        except BaseException as exc:  # surfaced to the test by stop()
            self.error = exc

    def start(self) -> ProcessorThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> EngineStats:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        if self.stats is None:
            raise TimeoutError("processor did not stop in time")
        return self.stats

    def __enter__(self) -> ProcessorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    partition: int
    offset: int
    event: ev.Envelope
    logged_ms: int = 0  # the record's Kafka timestamp: when the processor appended it


def _read(bootstrap: str, topic: str, partitions: int) -> list[LoggedEvent]:
    codec = EventCodec(max_frame_bytes=OUTPUT_MAX_RECORD_BYTES)
    rows = [
        LoggedEvent(
            int(msg.partition()),
            int(msg.offset()),
            codec.decode(msg.value()),
            logged_ms=int(msg.timestamp()[1]),
        )
        for msg in read_to_end(bootstrap, topic, range(partitions))
    ]
    rows.sort(key=lambda r: (r.partition, r.offset))
    return rows


def read_log(bootstrap: str, prefix: str, *, partitions: int) -> list[LoggedEvent]:
    """Every committed record of ``<prefix>.log``, in partition/offset order."""
    return _read(bootstrap, TopicLayout(prefix=prefix).log, partitions)


def read_dlq(bootstrap: str, prefix: str, *, partitions: int) -> list[LoggedEvent]:
    return _read(bootstrap, TopicLayout(prefix=prefix).dlq, partitions)


def check_log(rows: Iterable[LoggedEvent]) -> list[str]:
    """Problems with a log under the log contract; an empty list means it is sound."""
    checker = _LogChecker()
    for row in rows:
        checker.row(row)
    return checker.finish()


_Turn = tuple[str, str]


@dataclass
class _LogChecker:
    """One pass over a log; each method checks one rule of the contract."""

    problems: list[str] = field(default_factory=list)
    seen_ids: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    lease_epoch: dict[int, int] = field(default_factory=dict)
    holders: dict[tuple[int, int], str] = field(default_factory=dict)
    # Turns are keyed (tenant, turn id): turn ids are unique per session, and tenants may
    # share session ids.
    markers: dict[_Turn, list[Marker]] = field(default_factory=lambda: defaultdict(list))
    plan_of: dict[_Turn, str] = field(default_factory=dict)
    cancelled: set[_Turn] = field(default_factory=set)  # turns fenced by a TURN or SESSION cancel
    cancelled_nodes: set[tuple[_Turn, str]] = field(
        default_factory=set
    )  # (turn, node) by a NODE cancel
    outputs: set[tuple[_Turn, str | None, int]] = field(default_factory=set)
    accepted: set[str] = field(default_factory=set)

    def row(self, row: LoggedEvent) -> None:
        e, p = row.event, row.partition
        where = f"log[{p}]@{row.offset} {e.event_type.value} {e.session_id}/{e.turn_id}"
        self._epoch(e, p, where)
        cause = e.correlation.causation_id
        if cause is not None and cause not in self.seen_ids[p]:
            self.problems.append(f"{where}: causation {cause} does not resolve to an earlier event")
        self.seen_ids[p].add(e.event_id)
        if e.turn_id is not None:
            self._turn_event(e, (e.tenant_id, e.turn_id), where)

    def _epoch(self, e: ev.Envelope, p: int, where: str) -> None:
        if isinstance(e.payload, ev.LeaseGranted):
            lease = e.payload
            if lease.epoch <= self.lease_epoch.get(p, 0):
                self.problems.append(f"{where}: lease epoch {lease.epoch} does not increase")
            if self.holders.setdefault((p, lease.epoch), lease.holder) != lease.holder:
                self.problems.append(f"{where}: two holders of epoch {lease.epoch}")
            self.lease_epoch[p] = lease.epoch
        elif e.lease_epoch < self.lease_epoch.get(p, 0) or e.lease_epoch == 0:
            self.problems.append(
                f"{where}: stale epoch {e.lease_epoch} (partition at {self.lease_epoch.get(p, 0)})"
            )

    def _turn_event(self, e: ev.Envelope, turn: _Turn, where: str) -> None:
        marker = _MARKERS.get(e.event_type)
        if marker is not None:
            self.markers[turn].append(marker)
        if e.plan_hash is None or self.plan_of.setdefault(turn, e.plan_hash) != e.plan_hash:
            self.problems.append(
                f"{where}: plan_hash {e.plan_hash} differs from the turn's {self.plan_of.get(turn)}"
            )
        if isinstance(e.payload, ev.Cancel):
            if e.payload.scope is ev.CancelScope.NODE:
                self.cancelled_nodes.add((turn, e.payload.target))
            else:
                self.cancelled.add(turn)
        if e.event_type in _EGRESS and turn in self.cancelled:
            self.problems.append(f"{where}: egress after the turn was cancelled")
        elif e.event_type in _EGRESS and (turn, e.node_id or "") in self.cancelled_nodes:
            self.problems.append(f"{where}: egress of node {e.node_id} after it was cancelled")
        if isinstance(e.payload, ev.NodeOutput):
            key = (turn, e.node_id, e.payload.output_seq)
            if key in self.outputs:
                self.problems.append(f"{where}: duplicate output {key}")
            self.outputs.add(key)
        if isinstance(e.payload, ev.OutputAccepted):
            if e.payload.output_event_id in self.accepted:
                self.problems.append(f"{where}: output {e.payload.output_event_id} accepted twice")
            self.accepted.add(e.payload.output_event_id)

    def finish(self) -> list[str]:
        for turn, seq in self.markers.items():
            bad = first_violation(seq)
            if bad is not None:
                self.problems.append(f"turn {turn[0]}/{turn[1]}: lifecycle {[m.value for m in seq]}: {bad[1]}")
        return self.problems
