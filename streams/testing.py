"""Helpers for tests of RSPP deployments — importable by replay jobs in other repositories.

- :class:`ProcessorThread` runs a :class:`~streams.runtime.processor.Processor`
  on its own event loop in a background thread (``with ProcessorThread(cfg): …``).
- :func:`read_log` reads a prefix's log (read_committed) into :class:`LoggedEvent` rows.

Whether a log is sound is the replay engine's question: ``replay.logcheck.check_log``
runs its rules over rows read here (one rulebook, no second copy).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from types import TracebackType

from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.runtime.changelog import read_to_end
from streams.runtime.processor import Processor, ProcessorConfig
from streams.runtime.stats import EngineStats
from streams.topics import OUTPUT_MAX_RECORD_BYTES, TopicLayout

__all__ = ["LoggedEvent", "ProcessorThread", "read_dlq", "read_log"]


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
