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
from dataclasses import dataclass
from types import TracebackType

from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.runtime.changelog import read_to_end
from streams.runtime.lifecycle import Marker, first_violation
from streams.runtime.processor import Processor, ProcessorConfig
from streams.runtime.stats import EngineStats
from streams.topics import TopicLayout

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


def _read(bootstrap: str, topic: str, partitions: int) -> list[LoggedEvent]:
    codec = EventCodec()
    rows = [
        LoggedEvent(int(msg.partition()), int(msg.offset()), codec.decode(msg.value()))
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
    problems: list[str] = []
    seen_ids: dict[int, set[str]] = defaultdict(set)
    lease_epoch: dict[int, int] = {}
    holders: dict[tuple[int, int], str] = {}
    markers: dict[str, list[Marker]] = defaultdict(list)
    plan_of: dict[str, str] = {}
    cancelled: set[str] = set()
    outputs: set[tuple[str, str | None, int]] = set()
    accepted: set[str] = set()
    for row in rows:
        e, p = row.event, row.partition
        where = f"log[{p}]@{row.offset} {e.event_type.value} {e.session_id}/{e.turn_id}"
        if isinstance(e.payload, ev.LeaseGranted):
            lease = e.payload
            if lease.epoch <= lease_epoch.get(p, 0):
                problems.append(f"{where}: lease epoch {lease.epoch} does not increase")
            if holders.setdefault((p, lease.epoch), lease.holder) != lease.holder:
                problems.append(f"{where}: two holders of epoch {lease.epoch}")
            lease_epoch[p] = lease.epoch
        elif e.lease_epoch < lease_epoch.get(p, 0) or e.lease_epoch == 0:
            problems.append(
                f"{where}: stale epoch {e.lease_epoch} (partition at {lease_epoch.get(p, 0)})"
            )
        cause = e.correlation.causation_id
        if cause is not None and cause not in seen_ids[p]:
            problems.append(f"{where}: causation {cause} does not resolve to an earlier event")
        seen_ids[p].add(e.event_id)
        turn = e.turn_id
        if turn is None:
            continue
        marker = _MARKERS.get(e.event_type)
        if marker is not None:
            markers[turn].append(marker)
        if e.plan_hash is None or plan_of.setdefault(turn, e.plan_hash) != e.plan_hash:
            problems.append(
                f"{where}: plan_hash {e.plan_hash} differs from the turn's {plan_of.get(turn)}"
            )
        if e.event_type is ev.EventType.CANCEL:
            cancelled.add(turn)
        if e.event_type in _EGRESS and turn in cancelled:
            problems.append(f"{where}: egress after the turn was cancelled")
        if isinstance(e.payload, ev.NodeOutput):
            key = (turn, e.node_id, e.payload.output_seq)
            if key in outputs:
                problems.append(f"{where}: duplicate output {key}")
            outputs.add(key)
        if isinstance(e.payload, ev.OutputAccepted):
            if e.payload.output_event_id in accepted:
                problems.append(f"{where}: output {e.payload.output_event_id} accepted twice")
            accepted.add(e.payload.output_event_id)
    for turn, seq in markers.items():
        bad = first_violation(seq)
        if bad is not None:
            problems.append(f"turn {turn}: lifecycle {[m.value for m in seq]}: {bad[1]}")
    return problems
