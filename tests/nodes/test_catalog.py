"""The artifact catalog and the runtime registry describe the same node types.

Like the ABI mirror test for Avro: the compiler (``pipelines.catalog``) and the
runtime (``streams.nodes.registry``) must agree on every node type's name, IO
media types, providers, config model, implementation and deterministic flag,
and every node class in ``streams.nodes`` must be declared and registered. Each
check below fails when one step of "add a node type" is skipped.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types
from collections.abc import Iterable

import streams.nodes
from pipelines.catalog import NodeCatalog
from streams.nodes.kind import NodeKind
from streams.nodes.registry import BUILTINS, default_registry


def _modules() -> list[types.ModuleType]:
    return [
        importlib.import_module(f"streams.nodes.{m.name}")
        for m in pkgutil.iter_modules(streams.nodes.__path__)
    ]


def _node_classes(module: types.ModuleType) -> list[type]:
    # A node is a class of this module with the node protocol's process/flush/close
    # (the Node protocol itself is not one).
    return [
        cls for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and not getattr(cls, "_is_protocol", False)
        and all(callable(getattr(cls, m, None)) for m in ("process", "flush", "close"))
    ]


def unregistered_problems(modules: Iterable[types.ModuleType],
                          builtins: tuple[NodeKind, ...]) -> list[str]:
    """Node classes nobody declares, and declarations missing from ``builtins``."""
    impls = {kind.impl for kind in builtins}
    problems: list[str] = []
    for module in modules:
        for cls in _node_classes(module):
            if f"{cls.__module__}:{cls.__qualname__}" not in impls:
                problems.append(f"node class {module.__name__}.{cls.__qualname__} has no builtin() "
                                "declaration in BUILTINS")
        for name, value in vars(module).items():
            if isinstance(value, NodeKind) and value not in builtins:
                problems.append(f"{module.__name__}.{name} ({value.type_name}) is not in BUILTINS")
    return problems


def test_every_node_class_is_declared_and_every_declaration_registered() -> None:
    assert unregistered_problems(_modules(), BUILTINS) == []


def test_the_check_catches_a_skipped_step() -> None:
    text = importlib.import_module("streams.nodes.text")
    without_fillers = tuple(k for k in BUILTINS if k.type_name != "text.drop_fillers")
    problems = unregistered_problems([text], without_fillers)
    assert any("DropFillersNode has no builtin() declaration" in p for p in problems), problems
    assert any("DROP_FILLERS (text.drop_fillers) is not in BUILTINS" in p for p in problems), problems

    stray = types.ModuleType("streams.nodes.stray")

    class EchoNode:
        async def process(self) -> None: ...
        async def flush(self) -> None: ...
        def close(self) -> None: ...

    EchoNode.__module__, EchoNode.__qualname__ = stray.__name__, "EchoNode"
    stray.EchoNode = EchoNode  # type: ignore[attr-defined]
    assert unregistered_problems([stray], BUILTINS) == [
        "node class streams.nodes.stray.EchoNode has no builtin() declaration in BUILTINS"
    ]


def test_catalog_and_registry_agree() -> None:
    catalog = NodeCatalog().types
    registry = default_registry()
    assert sorted(catalog) == list(registry.types()) == sorted(k.type_name for k in BUILTINS)
    for kind in BUILTINS:
        entry = catalog[kind.type_name]
        assert registry.kind(kind.type_name) is kind
        assert (entry.input, entry.output) == (kind.input, kind.output), kind.type_name
        assert entry.input and entry.output, kind.type_name
        assert entry.providers == kind.providers and entry.providers, kind.type_name
        assert entry.config_model is kind.config is not None, kind.type_name
        assert entry.deterministic is kind.deterministic is registry.is_deterministic(kind.type_name)
        assert entry.package.impl_ref == kind.impl and entry.package.node_type == kind.type_name
        module, _, name = kind.impl.partition(":")
        impl = getattr(importlib.import_module(module), name)
        assert inspect.isclass(impl) and impl in _node_classes(inspect.getmodule(impl))  # type: ignore[arg-type]


def test_config_defaults_are_stated_in_the_schema_the_bundle_pins() -> None:
    # No hidden defaults: every field default the runtime could fall back to is part of
    # the JSON schema pinned by the package digest (and the compiler writes it into the
    # resolved view), so a changed default changes the digest.
    for kind in BUILTINS:
        assert kind.config is not None
        schema = kind.config.model_json_schema()
        for name, field in kind.config.model_fields.items():
            if not field.is_required():
                assert "default" in schema["properties"][name], (kind.type_name, name)


def test_unknown_types_are_not_resimulated() -> None:
    registry = default_registry()
    assert not registry.is_deterministic("no.such_type")
    assert {k.type_name for k in BUILTINS if registry.is_deterministic(k.type_name)} == {
        "text.normalize", "text.drop_fillers", "respond.rules"
    }
