"""Per-partition "next offset to commit", counting only records actually handled.

A record is *handled* once it was dispatched, shed, or handed to the DLQ. Because
routing follows the ``rspp_lane`` header, records of one partition can sit in
different lane queues and leave out of offset order; so the commit position is
the lowest offset still in flight, or last handled + 1 when none is. Committing
that position never skips a record that was fetched but not yet handled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["OffsetTracker"]

TopicPartitionKey = tuple[str, int]


class _Partition:
    __slots__ = ("done", "in_flight", "next_commit")

    def __init__(self) -> None:
        self.in_flight: deque[int] = deque()  # fetch order == offset order
        self.done: set[int] = set()  # handled but behind an older in-flight record
        self.next_commit: int | None = None


class OffsetTracker:
    """Bookkeeping only; the processor commits via ``send_offsets_to_transaction``."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: dict[TopicPartitionKey, _Partition] = {}

    def assign(self, partitions: Iterable[TopicPartitionKey]) -> None:
        for tp in partitions:
            self._parts.setdefault(tp, _Partition())

    def revoke(self, partitions: Iterable[TopicPartitionKey]) -> None:
        for tp in partitions:
            self._parts.pop(tp, None)

    def fetched(self, topic: str, partition: int, offset: int) -> None:
        part = self._parts.setdefault((topic, partition), _Partition())
        part.in_flight.append(offset)

    def handled(self, topic: str, partition: int, offset: int) -> None:
        part = self._parts.get((topic, partition))
        if part is None:
            return  # revoked meanwhile: the new owner re-reads from the last commit
        if part.in_flight and part.in_flight[0] == offset:
            part.in_flight.popleft()
            part.next_commit = offset + 1
            while part.in_flight and part.in_flight[0] in part.done:
                head = part.in_flight.popleft()
                part.done.discard(head)
                part.next_commit = head + 1
        else:
            part.done.add(offset)

    def in_flight(self, topic: str, partition: int) -> int:
        part = self._parts.get((topic, partition))
        return 0 if part is None else len(part.in_flight)

    def positions(self) -> dict[TopicPartitionKey, int]:
        """Next offset to commit per partition with at least one handled record."""
        return {tp: p.next_commit for tp, p in self._parts.items() if p.next_commit is not None}
