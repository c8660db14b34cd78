"""A small pool of worker processes per extension (and per node config).

Calls queue at the pool for an idle worker, never behind one busy worker, so a
hung call holds up only its own turn; see :mod:`streams.extensions.process`
for how each failure ends (typed node error, worker killed and replaced).
"""

from __future__ import annotations

import asyncio

from streams.extensions.process import Worker
from streams.extensions.spec import WorkerSpec

__all__ = ["Worker", "WorkerPool", "WorkerSpec"]


class WorkerPool:
    """A small set of workers for one extension (node instances are spread over them)."""

    def __init__(self, spec: WorkerSpec, *, size: int) -> None:
        self.spec = spec
        self.workers = tuple(Worker(spec, slot) for slot in range(max(1, size)))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._freed = asyncio.Event()

    def prestart(self) -> None:
        """Spawn every worker and wait until each has loaded the plugin, so the
        first turn does not spend its budget on a worker start (graph build time)."""
        for worker in self.workers:
            if worker.pid is None:
                worker.spawn()
        for worker in self.workers:
            worker.wait_started()

    async def acquire(self) -> Worker:
        """An idle, started worker; waits for one to free up. Calls queue here, at the
        pool, never behind one worker: a hung call must not hold up other sessions."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._freed = loop, asyncio.Event()
        for worker in self.workers:
            worker.on_free = self._freed.set
            worker.attach()
        while True:
            idle = [w for w in self.workers if not w.busy]
            if idle:
                worker = min(idle, key=lambda w: w.bound)
                worker.bound += 1
                worker.reserved = True  # until its call takes the lock
                return worker
            self._freed.clear()
            await self._freed.wait()

    def unbind(self, worker: Worker) -> None:
        worker.bound = max(0, worker.bound - 1)

    @property
    def restarts(self) -> int:
        return sum(w.restarts for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
