"""ExtensionRegistry: admit pinned extension nodes into a :class:`~streams.nodes.NodeRegistry`.

Node implementations are discovered through entry points (group
``rspp.nodes``, named by node type) and plain modules; each is admitted only
through an :class:`~pipelines.models.extension.ExtensionManifest` that pins
its package name, version and content digest (``package.impl_ref``):

- ``dist:<distribution>`` — an installed distribution; the entry point named
  after the node type in its ``rspp.nodes`` group is the plugin;
- ``module:<module>:<attr>`` — a plain module (local development, tests).

The plugin is a callable ``build(config) -> factory`` returning a zero-argument
factory of :class:`~streams.nodes.Node` objects. ``execution_mode: external``
(and every ``untrusted`` manifest) runs the node in worker processes
(:mod:`streams.extensions.pool`); ``in_process`` loads it into the processor.
An ``untrusted`` node's workers run in a bubblewrap
:class:`~streams.extensions.sandbox.Sandbox` that sees only the runtime and
the node's own package (network only with the ``network`` capability);
``verified`` and ``trusted`` nodes keep plain worker processes. Without a
working sandbox an untrusted node is refused (fail closed).

A manifest whose package is missing, has another version, or hashes to another
digest is refused. :meth:`ExtensionRegistry.install` then registers a node kind
that fails every turn reaching it (``NODE_ERROR``, the processor keeps
running), or raises at once with ``strict=True`` (``rspp ext verify``).
Bundles pin node packages by digest (``node_digests``): given a bundle,
only a manifest with the same digest may serve its node type.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Literal

from pipelines.models.extension import ExtensionManifest
from pipelines.models.resolved import PipelineBundle
from streams.adapters.base import RuntimeAdapterPlugin
from streams.extensions.digest import (
    ENTRY_POINT_GROUP,
    distribution_digest,
    module_digest,
)
from streams.extensions.errors import (
    DigestMismatchError,
    ExtensionLoadError,
    ExtensionNotFoundError,
    SandboxUnavailableError,
)
from streams.extensions.pool import WorkerSpec
from streams.extensions.proxy import IsolatedKind, refused_builder
from streams.extensions.sandbox import Sandbox
from streams.extensions.worker import load_target
from streams.nodes import NodeRegistry, ProviderPolicy, default_registry
from streams.nodes.node import NodeFactory
from streams.nodes.registry import NodeBuilder

__all__ = ["ADAPTER_GROUP", "ENTRY_POINT_GROUP", "ExtensionRegistry", "ExtensionStatus", "load_manifests"]

ADAPTER_GROUP = "rspp.adapters"
NETWORK_CAPABILITY = "network"  # the manifest capability that keeps an untrusted node's network
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "extensions"
State = Literal["verified", "refused"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionStatus:
    """The verification result of one node manifest."""

    name: str
    version: str
    source: str
    node_type: str
    impl_ref: str
    execution_mode: str
    pinned: str
    actual: str | None
    target: str | None  # module:attr of the plugin, when found
    state: State
    reason: str | None = None
    sandboxed: bool = False  # untrusted: its workers run in the bubblewrap sandbox

    @property
    def external(self) -> bool:
        return self.execution_mode == "external"

    @property
    def error(self) -> type[ExtensionLoadError]:
        """The exception type a strict load raises for this refusal."""
        if self.actual is None:
            return ExtensionLoadError
        if self.actual == self.pinned:  # the code verified: only the sandbox can refuse it
            return SandboxUnavailableError
        return DigestMismatchError


def load_manifests(directory: Path = DEFAULT_DIR) -> list[tuple[str, ExtensionManifest]]:
    """Every ``*.yaml`` ExtensionManifest under ``directory`` (schema errors raise, one line)."""
    from pipelines.loader import load_artifact

    out: list[tuple[str, ExtensionManifest]] = []
    for path in sorted(directory.glob("*.yaml")):
        loaded, issues = load_artifact(path)
        if loaded is None:
            raise ExtensionLoadError(f"{path}: " + "; ".join(str(i) for i in issues))
        if isinstance(loaded.model, ExtensionManifest):
            out.append((str(path), loaded.model))
    return out


def _resolve(impl_ref: str, node_type: str, version: str) -> tuple[str, str]:
    """(plugin target, actual digest) for an impl_ref; raises ExtensionLoadError."""
    scheme, _, rest = impl_ref.partition(":")
    if scheme == "dist":
        try:
            dist = distribution(rest)
        except PackageNotFoundError:
            raise ExtensionNotFoundError(f"distribution {rest} is not installed") from None
        if dist.version != version:
            raise ExtensionLoadError(
                f"distribution {rest} {dist.version} is installed (expected {version})")
        eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP and ep.name == node_type]
        if not eps:
            raise ExtensionNotFoundError(
                f"distribution {rest} has no {ENTRY_POINT_GROUP!r} entry point named {node_type!r}")
        return eps[0].value, distribution_digest(dist)
    if scheme == "module":
        module, _, attr = rest.partition(":")
        if not module or not attr:
            raise ExtensionLoadError(f"impl_ref {impl_ref!r} must be module:<module>:<attr>")
        return rest, module_digest(module)
    raise ExtensionLoadError(
        f"impl_ref {impl_ref!r} has no loader (expected dist:<name> or module:<module>:<attr>)")


def _package_paths(impl_ref: str) -> tuple[str, ...]:
    """The extension's own files, for the sandbox: what its digest covers."""
    scheme, _, rest = impl_ref.partition(":")
    if scheme == "module":  # the module's directory (its package), as module_digest hashes
        spec = importlib.util.find_spec(rest.partition(":")[0])
        return () if spec is None or spec.origin is None else (str(Path(spec.origin).parent),)
    dist = distribution(rest)
    tops = {f.parts[0] for f in dist.files or () if f.parts and not f.parts[0].endswith(
        (".dist-info", ".data")) and f.parts[0] != ".."}
    return tuple(sorted(str(dist.locate_file(top)) for top in tops))


class ExtensionRegistry:
    """Verified extension nodes (and adapter plugins), ready to install into a NodeRegistry."""

    def __init__(
        self,
        manifests: Sequence[tuple[str, ExtensionManifest]] = (),
        *,
        pool_size: int = 2,
        sandbox: Sandbox | None = None,
    ) -> None:
        self._manifests = list(manifests)
        self._pool_size = pool_size
        self._sandbox = sandbox or Sandbox()  # untrusted nodes: bwrap binary, uid, process limit
        self._plugins: dict[str, tuple[NodeBuilder, bool]] = {}
        self._adapters: dict[str, RuntimeAdapterPlugin] = {}
        self._kinds: list[IsolatedKind] = []
        self._statuses: dict[str, ExtensionStatus] | None = None

    @classmethod
    def from_directory(cls, directory: Path = DEFAULT_DIR, *, pool_size: int = 2,
                       sandbox: Sandbox | None = None) -> ExtensionRegistry:
        return cls(load_manifests(directory), pool_size=pool_size, sandbox=sandbox)

    # -- the guide's interface ---------------------------------------------

    def register_node_plugin(self, node_type: str, build: NodeBuilder, *, deterministic: bool) -> None:
        """An in-process plugin supplied by code (trusted; no manifest, no digest)."""
        self._plugins[node_type] = (build, deterministic)

    def register_external_node_boundary(self, source: str, manifest: ExtensionManifest) -> None:
        """Admit one more manifest (verified like the discovered ones)."""
        self._manifests.append((source, manifest))
        self._statuses = None

    def register_runtime_adapter(self, plugin: RuntimeAdapterPlugin) -> None:
        self._adapters[plugin.id()] = plugin

    def adapters(self) -> dict[str, RuntimeAdapterPlugin]:
        """Registered adapter plugins plus those advertised in the ``rspp.adapters`` group."""
        found = dict(self._adapters)
        for ep in entry_points(group=ADAPTER_GROUP):
            if ep.name not in found:
                plugin = ep.load()
                found[ep.name] = plugin() if isinstance(plugin, type) else plugin
        return found

    @staticmethod
    def entry_points() -> dict[str, str]:
        """Every installed ``rspp.nodes`` entry point: node type -> ``module:attr``."""
        return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}

    # -- verification ---------------------------------------------------------

    def _verify(self, source: str, m: ExtensionManifest) -> ExtensionStatus:
        assert m.package is not None and m.node is not None
        pkg = m.package
        external = pkg.execution_mode == "external" or m.type == "external_node" or m.trust_level == "untrusted"
        target: str | None = None
        actual: str | None = None
        reason: str | None = None
        try:
            target, actual = _resolve(pkg.impl_ref, pkg.node_type, pkg.version)
            if actual != pkg.digest:
                raise DigestMismatchError(
                    f"files hash to {actual} but the manifest pins {pkg.digest}")
            if m.trust_level == "untrusted":
                try:
                    self._sandbox.check()
                except SandboxUnavailableError as exc:
                    raise SandboxUnavailableError(f"untrusted node needs a sandbox: {exc}") from None
        except ExtensionLoadError as exc:
            reason = (f"extension {m.metadata.name} {m.metadata.version} ({source}): {exc}; "
                      "refusing to load")
        return ExtensionStatus(
            name=m.metadata.name, version=m.metadata.version, source=source,
            node_type=pkg.node_type, impl_ref=pkg.impl_ref,
            execution_mode="external" if external else "in_process",
            pinned=pkg.digest, actual=actual, target=target,
            state="refused" if reason else "verified", reason=reason,
            sandboxed=m.trust_level == "untrusted",
        )

    def statuses(self) -> list[ExtensionStatus]:
        """Verify every node manifest (cached; files are hashed once per registry)."""
        if self._statuses is None:
            self._statuses = {
                m.package.node_type: self._verify(src, m)
                for src, m in self._manifests
                if m.package is not None and m.node is not None
            }
        return list(self._statuses.values())

    def manifest(self, node_type: str) -> ExtensionManifest:
        for _src, m in self._manifests:
            if m.package is not None and m.package.node_type == node_type:
                return m
        raise ExtensionNotFoundError(f"no extension manifest declares node type {node_type!r}")

    # -- installation -----------------------------------------------------------

    def worker_spec(self, status: ExtensionStatus) -> WorkerSpec:
        m = self.manifest(status.node_type)
        assert status.target is not None and m.node is not None
        limits = m.resource_limits
        return WorkerSpec(
            name=status.node_type,
            target=status.target,
            memory_mb=limits.memory_mb if limits else 256,
            cpu_ms=limits.cpu_millis if limits else 1000,
            timeout_s=(limits.timeout_ms if limits else 1000) / 1000.0,
            cancel=m.node.cancel,
            path=tuple(p for p in sys.path if p and os.path.isdir(p)),
            sandbox=replace(self._sandbox, read_only=_package_paths(status.impl_ref),
                            network=NETWORK_CAPABILITY in m.capabilities)
            if status.sandboxed else None,
        )

    def builder(self, status: ExtensionStatus) -> NodeBuilder:
        """The NodeRegistry builder for a verified manifest."""
        if status.external:
            m = self.manifest(status.node_type)
            limits = m.resource_limits
            size = min(self._pool_size, limits.max_concurrency if limits else self._pool_size)
            assert m.node is not None
            kind = IsolatedKind(self.worker_spec(status), pool_size=size,
                                sticky=m.node.state != "stateless")
            self._kinds.append(kind)
            return kind
        assert status.target is not None
        plugin = load_target(status.target)

        def build(node_id: str, config: Mapping[str, object], policy: ProviderPolicy) -> NodeFactory:
            del node_id, policy
            return plugin(dict(config))

        return build

    def install(
        self, registry: NodeRegistry, *, bundle: PipelineBundle | None = None, strict: bool = False
    ) -> list[ExtensionStatus]:
        """Register every extension node type into ``registry``.

        With ``bundle``, a node type the bundle pins is served only by a manifest
        with the bundle's digest. Refused extensions raise with ``strict``, else
        they register a node that fails each turn with the refusal reason.
        """
        statuses = self.statuses()
        by_type = {s.node_type: s for s in statuses}
        if bundle is not None:
            builtin = set(default_registry().types())
            for pin in bundle.node_digests:
                if pin.node_type in builtin or pin.node_type in self._plugins:
                    continue
                status = by_type.get(pin.node_type)
                if status is None or status.pinned != pin.digest:
                    have = "no manifest" if status is None else f"manifest {status.source} pins {status.pinned}"
                    reason = (f"bundle {bundle.ref} pins {pin.node_type} at {pin.digest} but {have}; "
                              "refusing to load")
                    by_type[pin.node_type] = ExtensionStatus(
                        name=pin.node_type, version=pin.version, source=bundle.ref,
                        node_type=pin.node_type, impl_ref=pin.impl_ref,
                        execution_mode=pin.execution_mode, pinned=pin.digest, actual=None,
                        target=None, state="refused", reason=reason)
        for node_type, (build, deterministic) in self._plugins.items():
            registry.register(node_type, build, deterministic=deterministic)
        for status in by_type.values():
            if status.state == "refused":
                assert status.reason is not None
                if strict:
                    raise status.error(status.reason)
                registry.register(status.node_type, refused_builder(status.reason), deterministic=False)
                continue
            deterministic = self.manifest(status.node_type).node.deterministic  # type: ignore[union-attr]
            registry.register(status.node_type, self.builder(status), deterministic=deterministic)
        return list(by_type.values())

    def node_registry(self, *, bundle: PipelineBundle | None = None, strict: bool = False) -> NodeRegistry:
        """The built-ins plus every extension: pass it as ``ProcessorConfig(registry=...)``."""
        registry = default_registry()
        self.install(registry, bundle=bundle, strict=strict)
        return registry

    @property
    def restarts(self) -> int:
        """Worker processes restarted so far, over every external node's pools."""
        return sum(pool.restarts for kind in list(self._kinds) for pool in list(kind.pools.values()))

    def close(self) -> None:
        """Kill every worker process this registry started."""
        for kind in self._kinds:
            kind.close()
