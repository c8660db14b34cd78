"""Replay: log readers, divergence checks, reports and the audit store.

    from replay import ContainerLogSource, replay
    result = replay(ContainerLogSource("exports/run-42"), resimulate=True)
    result.raise_on_divergence()          # DivergenceError names kind, session, turn, offset, node

Readers (:mod:`replay.sources`) -> engine and checks (:mod:`replay.engine`,
:mod:`replay.checks`, :mod:`replay.resim`) -> reports (:mod:`replay.report`);
:mod:`replay.export` writes the container exports replay jobs keep as fixtures.
"""

from __future__ import annotations

from replay.api import replay, replay_many
from replay.errors import (
    BundleNotFoundError,
    CorruptInputError,
    DivergenceError,
    ForeignLogError,
    LogSourceError,
    ReplayError,
    TruncatedLogError,
)
from replay.export import export_log
from replay.model import Divergence, DivergenceKind, Position, ReplayResult, TurnResult
from replay.sources import ContainerLogSource, KafkaLogSource, LogSource

__all__ = [
    "BundleNotFoundError",
    "ContainerLogSource",
    "CorruptInputError",
    "Divergence",
    "DivergenceError",
    "DivergenceKind",
    "ForeignLogError",
    "KafkaLogSource",
    "LogSource",
    "LogSourceError",
    "Position",
    "ReplayError",
    "ReplayResult",
    "TruncatedLogError",
    "TurnResult",
    "export_log",
    "replay",
    "replay_many",
]
