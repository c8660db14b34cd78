"""Errors raised by :mod:`streams.extensions`.

Two families share the root :class:`ExtensionError`:

- load-time refusals (:class:`ExtensionLoadError` and subclasses): a manifest
  names a package that is missing, has another version, or whose files no
  longer hash to the pinned digest. They are one line and name the manifest.
- call-time failures of an isolated node (:class:`IsolatedNodeError` and
  subclasses). These are also :class:`streams.nodes.NodeError`, so the graph
  runner records them as a failed node (``NODE_ERROR``) and the turn's policy
  decides what follows; the worker that misbehaved is replaced.
"""

from __future__ import annotations

from streams.errors import StreamsError
from streams.nodes.errors import NodeError, NodeTimeoutError

__all__ = [
    "DigestMismatchError",
    "ExtensionError",
    "ExtensionLoadError",
    "ExtensionNotFoundError",
    "ExtensionRefusedError",
    "IsolatedNodeError",
    "NodeRaisedError",
    "SandboxUnavailableError",
    "WorkerCrashedError",
    "WorkerMemoryError",
    "WorkerProtocolError",
    "WorkerTimeoutError",
]


class ExtensionError(StreamsError):
    """Root of every error raised by :mod:`streams.extensions`."""


class ExtensionLoadError(ExtensionError):
    """An extension cannot be admitted (bad manifest, missing plugin, wrong version)."""


class ExtensionNotFoundError(ExtensionLoadError):
    """No installed distribution, entry point or module provides the manifest's package."""


class DigestMismatchError(ExtensionLoadError):
    """The installed files do not hash to the digest the manifest (and bundle) pins."""


class SandboxUnavailableError(ExtensionLoadError):
    """bubblewrap is missing or fails its self-check: untrusted nodes are refused (fail closed)."""


class IsolatedNodeError(NodeError, ExtensionError):
    """An isolated node call failed; the runtime records it as a node error."""


class ExtensionRefusedError(IsolatedNodeError):
    """A turn reached a node whose extension was refused at load time (see the reason)."""


class NodeRaisedError(IsolatedNodeError):
    """The node's own code raised an exception inside the worker (the worker survives)."""


class WorkerCrashedError(IsolatedNodeError):
    """The worker process died during a call (signal, abort, CPU limit)."""


class WorkerTimeoutError(IsolatedNodeError, NodeTimeoutError):
    """A call overran the node's budget; the worker was killed."""


class WorkerMemoryError(IsolatedNodeError):
    """The node exceeded its address-space limit; the worker was replaced."""


class WorkerProtocolError(IsolatedNodeError):
    """The worker wrote something that is not a valid frame or reply (garbage on the pipe)."""
