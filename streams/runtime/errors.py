"""Errors of the turn engine and processor."""

from __future__ import annotations

from streams.errors import StreamsError

__all__ = ["FencedError", "LifecycleError", "ProcessorError"]


class ProcessorError(StreamsError):
    """Root of the processor's own errors."""


class LifecycleError(ProcessorError):
    """A turn marker arrived out of the order OPEN → ACTIVE → (COMMIT | ABORT) → CLOSE."""

    def __init__(self, *, turn_id: str, have: str | None, got: str) -> None:
        self.turn_id = turn_id
        self.have = have
        self.got = got
        after = f"after {have}" if have is not None else "before OPEN"
        super().__init__(f"turn {turn_id}: {got} {after} is not a valid lifecycle step")


class FencedError(ProcessorError):
    """This processor lost its lease (or its producer was fenced); it must stop writing.

    ``membership_lost``: the group refused the offsets because this member's
    generation is gone (UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION). That is a zombie
    only if another processor took the partitions meanwhile; after a broker outage
    longer than the session timeout nobody did (see ``Processor.taken_over``).
    """

    def __init__(self, message: str, *, membership_lost: bool = False) -> None:
        super().__init__(message)
        self.membership_lost = membership_lost
