"""What a worker runs and within which limits (from an ExtensionManifest)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["WorkerSpec"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """How to start a worker for one extension, and its limits."""

    name: str  # the node type, for messages
    target: str  # ``module:attr`` of the plugin builder
    config: Mapping[str, object] = field(default_factory=dict)
    memory_mb: int = 256
    cpu_ms: int = 1000
    timeout_s: float = 1.0
    nofile: int = 64
    cancel: Literal["cooperative", "kill"] = "kill"
    start_timeout_s: float = 15.0
    path: tuple[str, ...] = ()

    def init_message(self) -> dict[str, Any]:
        return {
            "op": "init",
            "target": self.target,
            "config": dict(self.config),
            "path": list(self.path),
            "limits": {"memory_mb": self.memory_mb, "cpu_ms": self.cpu_ms, "nofile": self.nofile},
        }
