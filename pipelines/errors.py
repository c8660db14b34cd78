"""Errors raised while loading, validating, compiling and bundling artifacts.

Every error names what a pipeline author needs to act on: the file, the field
(a dotted path, plus a YAML line where one is known) and what was expected.
Errors that gather several problems (:class:`ArtifactValidationError`) carry all of
them, so one run reports everything that is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ArtifactError",
    "ArtifactValidationError",
    "BundleTamperedError",
    "CompileError",
    "ImmutableVersionError",
    "Issue",
    "NotFoundError",
    "PipelinesError",
    "PlanError",
    "RolloutError",
]


_SIMPLE_KEY = re.compile(r"^[A-Za-z0-9_@/+-]+$")


class PipelinesError(Exception):
    """Root of every error raised by :mod:`pipelines`."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in one artifact: ``file:line: path: message``."""

    file: str
    loc: tuple[str | int, ...]
    message: str
    line: int | None = None

    @property
    def dotted(self) -> str:
        # Odd keys (spaces, dots, control characters) are quoted so the path stays one token.
        return ".".join(
            str(p) if isinstance(p, int) or _SIMPLE_KEY.match(p) else repr(p) for p in self.loc
        )

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.dotted}: {self.message}" if self.loc else f"{where}: {self.message}"
        return text.replace("\r", "\\r").replace("\n", "\\n")  # always one line


class ArtifactError(PipelinesError):
    """A single problem with one artifact file."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(str(issue))
        self.issue = issue


class ArtifactValidationError(PipelinesError):
    """One or more artifacts are invalid; ``issues`` lists every problem."""

    exit_code = 1

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = tuple(issues)
        first = str(issues[0]) if issues else "validation failed"
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(first + more)


class CompileError(ArtifactValidationError):
    """The spec, profile, policies and modules do not compose into a valid ResolvedSpec."""


class ImmutableVersionError(PipelinesError):
    """A published ``name@version`` was re-published with different content."""

    def __init__(self, *, kind: str, ref: str, existing: str, attempted: str) -> None:
        super().__init__(
            f"{kind} {ref} is already published as {existing}; refusing different content "
            f"{attempted} (expected a new version)"
        )
        self.existing = existing
        self.attempted = attempted


class NotFoundError(PipelinesError):
    """A reference (name@version or digest) is not in the store."""


class BundleTamperedError(PipelinesError):
    """A bundle's recorded digest does not match its content."""

    def __init__(self, *, source: str, recorded: str, actual: str) -> None:
        super().__init__(
            f"{source}: bundle digest mismatch: recorded {recorded}, content hashes to {actual} "
            "(expected an untouched bundle; rebuild it with `rspp bundle build`)"
        )
        self.recorded = recorded
        self.actual = actual


class PlanError(PipelinesError):
    """A turn plan cannot be resolved (stale lease, wrong pinned bundle, unknown decision)."""


class RolloutError(PipelinesError):
    """A rollout cannot assign a session (unknown bundle, bad stage)."""
