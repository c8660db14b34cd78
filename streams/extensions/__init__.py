"""Extensions: pinned custom nodes, isolated external nodes, adapter plugins.

- :class:`ExtensionRegistry` verifies manifests (``pipelines/extensions``)
  against installed code by digest and installs node kinds into a
  :class:`~streams.nodes.NodeRegistry` (``ProcessorConfig(registry=...)``).
- External nodes run in worker processes (:class:`WorkerPool`) with
  ``setrlimit`` limits, a per-call budget and cancellation; every failure is an
  :class:`IsolatedNodeError`, which is a :class:`~streams.nodes.NodeError`.
- ``untrusted`` nodes' workers run in a bubblewrap :class:`Sandbox` (no network
  unless declared, read-only runtime and package, private scratch, own PID
  namespace, process limit); without a working sandbox they are refused.

Names are imported lazily: the worker process (``python -m
streams.extensions.worker``) must not pay for the registry's imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.extensions.digest import (
        ENTRY_POINT_GROUP,
        distribution_digest,
        module_digest,
        wheel_digest,
    )
    from streams.extensions.errors import (
        DigestMismatchError,
        ExtensionError,
        ExtensionLoadError,
        ExtensionNotFoundError,
        ExtensionRefusedError,
        IsolatedNodeError,
        NodeRaisedError,
        SandboxUnavailableError,
        WorkerCrashedError,
        WorkerMemoryError,
        WorkerProtocolError,
        WorkerTimeoutError,
    )
    from streams.extensions.pool import WorkerPool, WorkerSpec
    from streams.extensions.proxy import IsolatedKind, IsolatedNode
    from streams.extensions.registry import ExtensionRegistry, ExtensionStatus, load_manifests
    from streams.extensions.sandbox import Sandbox

__all__ = [
    "ENTRY_POINT_GROUP",
    "DigestMismatchError",
    "ExtensionError",
    "ExtensionLoadError",
    "ExtensionNotFoundError",
    "ExtensionRefusedError",
    "ExtensionRegistry",
    "ExtensionStatus",
    "IsolatedKind",
    "IsolatedNode",
    "IsolatedNodeError",
    "NodeRaisedError",
    "Sandbox",
    "SandboxUnavailableError",
    "WorkerCrashedError",
    "WorkerMemoryError",
    "WorkerPool",
    "WorkerProtocolError",
    "WorkerSpec",
    "WorkerTimeoutError",
    "distribution_digest",
    "load_manifests",
    "module_digest",
    "wheel_digest",
]

_HOME = {
    "ENTRY_POINT_GROUP": "digest", "distribution_digest": "digest", "module_digest": "digest",
    "wheel_digest": "digest", "WorkerPool": "pool", "WorkerSpec": "pool",
    "IsolatedKind": "proxy", "IsolatedNode": "proxy", "ExtensionRegistry": "registry",
    "ExtensionStatus": "registry", "load_manifests": "registry", "Sandbox": "sandbox",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"streams.extensions.{_HOME.get(name, 'errors')}")
    return getattr(module, name)
