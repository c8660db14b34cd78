"""Errors of the audit store; all derive from :class:`replay.errors.ReplayError`.

Exit codes follow ``replay``: 2 = the audit could not run (no database, bad
option, unreadable log), 1 = the auditor's statement was refused or failed.
"""

from __future__ import annotations

from replay.errors import ReplayError

__all__ = ["AuditError", "LimitExceededError", "QueryError", "StoreError", "WriteRefusedError"]


class AuditError(ReplayError):
    """Root of :mod:`replay.audit` errors."""

    exit_code = 2


class StoreError(AuditError):
    """The audit database is missing, locked, from another schema version, or would duplicate."""

    exit_code = 2


class QueryError(AuditError):
    """A statement or report failed (syntax, unknown column, unknown report)."""

    exit_code = 1


class WriteRefusedError(QueryError):
    """``rspp audit sql`` only reads: the statement would write or change settings."""

    exit_code = 1


class LimitExceededError(QueryError):
    """A statement or report ran past its time limit or memory limit and was stopped."""

    exit_code = 1
