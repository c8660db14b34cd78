"""Node types as the compiler sees them: IO media types, providers, config schema, package pin.

Built-in node types are declared once, next to their code, in :mod:`streams.nodes`
(``streams.nodes.registry.BUILTINS``); this catalog derives its entries from those
declarations and pins each type's package by digest in bundles. Extension
manifests add node types at compile time (:meth:`NodeCatalog.with_extensions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipelines.canonical import digest_of
from pipelines.models.base import Model
from pipelines.models.extension import ExtensionManifest, NodePackageRef

if TYPE_CHECKING:
    from streams.nodes.kind import NodeKind

__all__ = ["BUILTIN_NODE_VERSION", "NodeCatalog", "NodeType", "builtin_types"]

BUILTIN_NODE_VERSION = "1.0.0"


@dataclass(frozen=True, slots=True)
class NodeType:
    """What the compiler knows about one node type."""

    name: str
    input: str
    output: str
    providers: tuple[str, ...]
    package: NodePackageRef
    config_model: type[Model] | None  # None: free-form config (extensions)
    deterministic: bool


def _from_kind(kind: NodeKind) -> NodeType:
    assert kind.config is not None, kind.type_name  # built-ins always declare a config model
    io = (kind.input, kind.output)
    descriptor = {
        "node_type": kind.type_name, "impl_ref": kind.impl, "version": BUILTIN_NODE_VERSION,
        "execution_mode": "in_process", "io": list(io), "config_schema": kind.config.model_json_schema(),
    }
    package = NodePackageRef(
        node_type=kind.type_name, impl_ref=kind.impl, version=BUILTIN_NODE_VERSION,
        digest=digest_of(descriptor), execution_mode="in_process",
    )
    return NodeType(
        name=kind.type_name, input=io[0], output=io[1], providers=kind.providers, package=package,
        config_model=kind.config, deterministic=kind.deterministic,
    )


_builtin_cache: dict[str, NodeType] = {}


def builtin_types() -> dict[str, NodeType]:
    """The built-in node types, derived once from the runtime's declarations."""
    if not _builtin_cache:
        # Imported here: streams.nodes imports pipelines.models, and pipelines/__init__
        # imports this module, so a module-level import would be circular.
        from streams.nodes.registry import BUILTINS

        _builtin_cache.update((kind.type_name, _from_kind(kind)) for kind in BUILTINS)
    return dict(_builtin_cache)


@dataclass(frozen=True, slots=True)
class NodeCatalog:
    types: dict[str, NodeType] = field(default_factory=builtin_types)

    def get(self, name: str) -> NodeType | None:
        return self.types.get(name)

    def with_extensions(self, extensions: tuple[ExtensionManifest, ...]) -> NodeCatalog:
        types = dict(self.types)
        for ext in extensions:
            if ext.node is None or ext.package is None:
                continue
            types[ext.node.node_type] = NodeType(
                name=ext.node.node_type, input=ext.node.io.input, output=ext.node.io.output,
                providers=tuple(ext.node.providers), package=ext.package, config_model=None,
                deterministic=ext.node.deterministic,
            )
        return NodeCatalog(types=types)
