"""Build a node's frozen config dataclass from the spec's YAML mapping, once, at the edge.

The compiler has already validated configs against the catalog's pydantic
models; this is the runtime's own narrow check so a hand-built graph (tests,
the demo) gets one-line errors naming the node and field too.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from streams.nodes.errors import NodeConfigError

__all__ = ["config_from_mapping"]

C = TypeVar("C")


def _check(node: str, name: str, hint: Any, value: object) -> object:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        for option in typing.get_args(hint):
            if option is type(None) and value is None:
                return None
            if option is not type(None):
                try:
                    return _check(node, name, option, value)
                except NodeConfigError:
                    continue
        raise NodeConfigError(
            f"node {node!r}: config field {name!r} has unexpected value {value!r}"
        )
    if origin is tuple:
        (inner, _) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise NodeConfigError(f"node {node!r}: config field {name!r} must be a list")
        return tuple(_check(node, f"{name}[{i}]", inner, v) for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (
        isinstance(hint, type)
        and isinstance(value, hint)
        and not (hint is int and isinstance(value, bool))
    ):
        return value
    raise NodeConfigError(
        f"node {node!r}: config field {name!r} must be {getattr(hint, '__name__', hint)}, "
        f"got {type(value).__name__}"
    )


def config_from_mapping(cls: type[C], mapping: Mapping[str, object], *, node_id: str) -> C:
    """Instantiate dataclass ``cls`` from ``mapping`` (lists become tuples, unknown keys fail).

    Fields of nested types are left to the caller: pass them pre-built in ``mapping``.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise NodeConfigError(f"node {node_id!r}: unknown config field(s) {unknown}")
    kwargs: dict[str, object] = {}
    for name, value in mapping.items():
        hint = hints[name]
        if dataclasses.is_dataclass(value) or (
            isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0])
        ):
            kwargs[name] = value  # already built by the node's own parser
        else:
            kwargs[name] = _check(node_id, name, hint, value)
    missing = [
        f.name
        for f in known.values()
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise NodeConfigError(f"node {node_id!r}: missing config field(s) {missing}")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise NodeConfigError(f"node {node_id!r}: {exc}") from exc
