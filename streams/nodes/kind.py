"""One declaration per node type: config model, IO media types, providers, flags, builder.

A built-in node module ends with a :func:`builtin` call; :mod:`streams.nodes.registry`
lists those declarations, the runtime builds graphs from them and the artifact
catalog (:mod:`pipelines.catalog`) derives its node types from the same objects,
so the compiler and the runtime cannot disagree about a node type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from pipelines.models.base import Model
from streams.nodes.errors import NodeConfigError
from streams.nodes.node import NodeFactory
from streams.nodes.providers import ProviderPolicy

__all__ = ["NodeBuilder", "NodeKind", "builtin", "parse_config"]

C = TypeVar("C", bound=Model)

NodeBuilder = Callable[[str, Mapping[str, object], ProviderPolicy], NodeFactory]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeKind:
    """Everything RSPP knows about one node type.

    ``deterministic``: re-running the node on its recorded inputs gives its
    recorded outputs, so replay re-simulates it. ``inline``: process/flush never
    await, so the node may run inside its upstream's task (:mod:`streams.nodes.fusion`).
    Extension kinds have no ``config`` model (their manifests describe them).
    """

    type_name: str
    build: NodeBuilder
    deterministic: bool
    origin: str = "builtin"  # or "extension"
    inline: bool = False
    input: str = ""
    output: str = ""
    providers: tuple[str, ...] = ()
    config: type[Model] | None = None
    impl: str = ""  # "module:Class" of the node, pinned in bundles by digest


def parse_config(model: type[C], mapping: Mapping[str, object], *, node_id: str) -> C:
    """Validate a node's config mapping once, at graph build time; one-line errors."""
    try:
        return model.model_validate(dict(mapping))
    except ValidationError as exc:
        problems = "; ".join(
            (f"field {'.'.join(str(p) for p in e['loc'])!r}: " if e["loc"] else "") + e["msg"]
            for e in exc.errors()
        )
        raise NodeConfigError(f"node {node_id!r}: config {problems}") from None


def builtin(
    type_name: str,
    *,
    io: tuple[str, str],
    providers: tuple[str, ...],
    config: type[C],
    node: type[Any],
    deterministic: bool,
    prepare: Callable[[C, ProviderPolicy], NodeFactory],
    inline: bool = False,
) -> NodeKind:
    """Declare a built-in node type; ``prepare`` gets the validated config once per graph."""

    def build(node_id: str, mapping: Mapping[str, object], policy: ProviderPolicy) -> NodeFactory:
        return prepare(parse_config(config, mapping, node_id=node_id), policy)

    return NodeKind(
        type_name=type_name,
        build=build,
        deterministic=deterministic,
        inline=inline,
        input=io[0],
        output=io[1],
        providers=providers,
        config=config,
        impl=f"{node.__module__}:{node.__qualname__}",
    )
