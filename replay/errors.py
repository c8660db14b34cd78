"""Errors raised by log readers, the replay engine and the audit store.

``exit_code`` is what ``rspp`` exits with when the error reaches the CLI root:
2 = replay could not run (bad input, unreachable broker, missing bundle),
1 = replay ran and found divergence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replay.model import ReplayResult

__all__ = [
    "BundleNotFoundError",
    "CorruptInputError",
    "DivergenceError",
    "ForeignLogError",
    "LogSourceError",
    "ReplayError",
    "TruncatedLogError",
]


class ReplayError(Exception):
    """Root of every error raised by :mod:`replay`."""

    exit_code: int = 2


class LogSourceError(ReplayError):
    """The log could not be read; the message names the file/topic and record."""

    exit_code = 2


class CorruptInputError(LogSourceError):
    """A container file or a log record cannot be decoded (bad block, unknown schema id)."""


class ForeignLogError(LogSourceError):
    """The log belongs to another prefix or tenant than the one asked for."""


class TruncatedLogError(LogSourceError):
    """A topic ended before the end offsets taken when reading started."""


class BundleNotFoundError(ReplayError):
    """A recorded turn references a bundle digest that no bundle directory or store holds."""

    exit_code = 2


class DivergenceError(ReplayError):
    """Replay found recorded behaviour that the log rules or the current code contradict.

    Raised by :meth:`replay.model.ReplayResult.raise_on_divergence` (the
    counterpart of Temporal's non-determinism error); carries the full result.
    """

    exit_code = 1

    def __init__(self, result: ReplayResult) -> None:
        lines = [*result.integrity, *(d.one_line() for d in result.divergences)]
        more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
        super().__init__(f"{lines[0]}{more}")
        self.result = result
