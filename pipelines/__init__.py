"""Pipeline artifacts: models, validation, compiler, immutable bundles, rollouts, turn plans."""

from __future__ import annotations

from pipelines.errors import PipelinesError

__all__ = ["PipelinesError"]
