"""The crash-restart supervisor of `rspp run`: restart from the committed state after a
transient failure, stop for good when fenced.

Crash-only recovery: nothing is carried from a failed processor to the next one except what
Kafka holds (leases, the session changelog, committed offsets), so a restart is the normal
assignment path, the same one a second processor joining the group takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.runtime.errors import FencedError, ProcessorError
from streams.runtime.processor import Processor, ProcessorConfig
from streams.runtime.stats import EngineStats

__all__ = ["RunTotals", "supervise"]

_log = logging.getLogger("rspp.supervisor")


@dataclass(slots=True)
class RunTotals:
    """What every incarnation of the processor did, for the final summary."""

    stats: EngineStats
    restarts: int = 0
    dlq: int = 0
    dlq_reasons: dict[str, int] = field(default_factory=dict)
    transactions: int = 0
    records: int = 0

    def add(self, processor: Processor) -> None:
        self.stats.add(processor.stats)
        self.dlq += processor.dlq_count
        for reason, n in processor.dlq_reasons.items():
            self.dlq_reasons[reason] = self.dlq_reasons.get(reason, 0) + n
        self.transactions += processor.egress.stats.transactions
        self.records += processor.egress.stats.records


async def supervise(
    config: ProcessorConfig,
    *,
    factory: Callable[[ProcessorConfig], Processor] | None = None,
    notify: Callable[[str], object] = _log.warning,
) -> tuple[Processor, RunTotals]:
    """Run until SIGTERM/SIGINT; restart from the committed state after a transient failure.

    Crash-only recovery: a processor that lost its broker (timeouts, aborted transaction)
    is thrown away and a new one takes the partitions back through the normal assignment
    path (new lease epoch, sessions from the changelog, open turns aborted as failover).
    A fenced processor is a zombie and stops for good.
    """
    totals = RunTotals(stats=EngineStats())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    backoff = 1.0
    while True:
        processor: Processor | None = None
        try:
            processor = (factory or Processor)(config)
            await processor.run(stop)
            totals.add(processor)
            return processor, totals
        except FencedError as exc:
            # Lost group membership (e.g. the broker was away longer than the session
            # timeout) is not being fenced, unless another holder took the partitions.
            if stop.is_set() or not exc.membership_lost or processor is None:
                raise
            if await asyncio.to_thread(processor.taken_over):
                raise
            notify(
                f"rspp run: {exc}; the group dropped this member but no other holder "
                "took its partitions: restarting from the committed state"
            )
        except ProcessorError as exc:
            if stop.is_set():
                raise
            # A processor that was frozen (SIGSTOP, a long GC, a partition) may fail with a
            # stalled call rather than a fencing error; if someone took over, it is a zombie.
            if processor is not None and await asyncio.to_thread(processor.taken_over):
                raise FencedError(
                    f"{exc}; another holder took this processor's partitions (fenced)"
                ) from None
            notify(
                f"rspp run: {exc}; restarting from the committed state in {backoff:.0f}s"
            )
        if processor is not None:
            totals.add(processor)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=backoff)
        if stop.is_set():
            if processor is None:
                raise ProcessorError("stopped while restarting after a transient failure")
            # Between incarnations nothing is held: the failed one aborted its transaction
            # and closed, so everything it did is committed or will be redone. A stop
            # request honoured here is an orderly stop, not a failure.
            notify("rspp run: stop requested during the restart back-off; state is committed")
            return processor, totals
        backoff = min(backoff * 2, 30.0)
        totals.restarts += 1
