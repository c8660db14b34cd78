"""What a worker runs and within which limits (from an ExtensionManifest)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from streams.extensions.sandbox import Sandbox

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
    sandbox: Sandbox | None = None  # untrusted nodes: the worker runs under bubblewrap

    def init_message(self) -> dict[str, Any]:
        return {
            "sandbox": None if self.sandbox is None else self.sandbox.init_message(),
            "op": "init",
            "target": self.target,
            "config": dict(self.config),
            "path": list(self.path),
            "limits": {"memory_mb": self.memory_mb, "cpu_ms": self.cpu_ms, "nofile": self.nofile},
        }
