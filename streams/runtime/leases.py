"""Lease epochs per lane partition (docs/architecture.md, invariant 12).

When a processor gains partition ``p`` it reads the latest granted epoch for
``p`` from ``<prefix>.leases`` (compacted, key = partition number, read
committed), grants ``epoch + 1`` to itself, and appends ``LeaseGranted`` to
the leases topic and the log in its next transaction. Every event it writes
for ``p`` carries that epoch; egress refuses anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from streams.runtime.changelog import read_to_end
from streams.runtime.errors import FencedError

__all__ = ["Lease", "LeaseBook", "read_latest_epochs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    partition: int
    epoch: int
    holder: str


def lease_key(partition: int) -> bytes:
    return f"partition-{partition}".encode()


def read_latest_epochs(
    bootstrap: str,
    leases_topic: str,
    partitions: Iterable[int],
    *,
    decode_epoch: Callable[[bytes], tuple[int, int]],
    timeout: float = 30.0,
) -> dict[int, int]:
    """Latest committed epoch per partition (0 when never granted).

    ``decode_epoch`` maps a record value to ``(partition, epoch)``; lease
    records sit in the leases-topic partition of the same number.
    """
    latest = dict.fromkeys(set(partitions), 0)
    for msg in read_to_end(bootstrap, leases_topic, latest, timeout=timeout):
        value = msg.value()
        if value is None:
            continue
        part, epoch = decode_epoch(value)
        if part in latest:
            latest[part] = max(latest[part], int(epoch))
    return latest


class LeaseBook:
    """The leases this processor holds now; the egress-side authority check."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        self._held: dict[int, Lease] = {}

    def grant(self, partition: int, previous_epoch: int) -> Lease:
        lease = Lease(partition=partition, epoch=previous_epoch + 1, holder=self.holder)
        self._held[partition] = lease
        return lease

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._held.pop(p, None)

    def epoch(self, partition: int) -> int:
        """The epoch to stamp on events of ``partition``; FencedError when not held."""
        lease = self._held.get(partition)
        if lease is None:
            raise FencedError(f"partition {partition} is not leased to {self.holder}")
        return lease.epoch

    def holds(self, partition: int, epoch: int) -> bool:
        lease = self._held.get(partition)
        return lease is not None and lease.epoch == epoch

    def is_stale(self, partition: int, epoch: int | None) -> bool:
        """An ingress epoch older than the current lease of its partition is stale."""
        if epoch is None or epoch == 0:
            return False  # producers that do not track leases send no epoch
        lease = self._held.get(partition)
        return lease is not None and epoch < lease.epoch

    def is_ahead(self, partition: int, epoch: int | None) -> bool:
        """An ingress epoch newer than the partition's current lease: no producer can have
        seen it, since only a processor grants epochs."""
        if epoch is None:
            return False
        lease = self._held.get(partition)
        return epoch > (lease.epoch if lease is not None else 0)

    @property
    def partitions(self) -> list[int]:
        return sorted(self._held)
