"""``check_log``: the replay engine's rules over a log held in memory.

There is one rulebook for what a sound log is — the replay engine's (docs/architecture.md,
"Replay"). Tests, ``rspp demo`` and users' own jobs call this instead of keeping a second
copy of the lifecycle, epoch, causation and cancel-fencing rules that could drift from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from pipelines.store import ArtifactStore
from replay.bundles import BundleIndex
from replay.checks import PlanChecker
from replay.engine import Engine
from replay.evidence import DEFAULT_ARTIFACT, load_rules
from replay.model import Divergence, Position
from streams.abi.events import Envelope

__all__ = ["LogRow", "check_log", "log_divergences"]


class LogRow(Protocol):
    """A log record as read back (``streams.testing.LoggedEvent`` is one)."""

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def event(self) -> Envelope: ...


def log_divergences(
    rows: Iterable[LogRow],
    *,
    source: str = "log",
    store: Path | None = None,
    bundle_dirs: Sequence[Path] = (),
) -> list[Divergence]:
    """Every divergence the replay engine's verify mode fails ``rows`` for (log order per
    partition); what the replay policy tolerates is not a problem here either. Plans are
    re-derived from their bundles: ``store`` is the artifact store the processor archived
    its bundle in, when it is not the default one."""
    rules = load_rules(DEFAULT_ARTIFACT)
    index = BundleIndex(bundle_dirs, store=ArtifactStore(store) if store is not None else None)
    engine = Engine(rules=rules, plans=PlanChecker(bundles=index), policy=rules.policy("verify"))
    records = ((Position(source, row.partition, row.offset), row.event) for row in rows)
    return [d for turn in engine.run(records) for d in turn.divergences]


def check_log(
    rows: Iterable[LogRow],
    *,
    source: str = "log",
    store: Path | None = None,
    bundle_dirs: Sequence[Path] = (),
) -> list[str]:
    """Problems with a log, one line each; an empty list means it is sound."""
    found = log_divergences(rows, source=source, store=store, bundle_dirs=bundle_dirs)
    return [d.one_line() for d in found]
