"""Hot-path constructors derived from a model's own fields.

Validating a small strict model through pydantic costs 1-2 µs; a turn's plan
builds four of them at OPEN, on the processor's event loop. :func:`fast_init`
reads a model's fields (type, ``min_length``/``max_length``, ``ge``/``gt``/
``le``/``lt``, anchored ``pattern``, defaults) once and generates a constructor
that checks exactly those and builds the instance directly; any value it does
not accept goes through the model itself, so errors (and anything the generated
checks would be unsure of) are pydantic's own. Adding a field to the model is
the only edit: the constructor follows. A model with a field or validator the
derivation cannot express is refused at import, never checked loosely.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

import annotated_types as at
from pydantic.fields import FieldInfo

from pipelines.models.base import Model

__all__ = ["fast_init"]

P = ParamSpec("P")
M = TypeVar("M", bound=Model)

_PLAIN = {str: "str", int: "int", bool: "bool"}
_BOUNDS = ((at.Ge, "ge", ">="), (at.Gt, "gt", ">"), (at.Le, "le", "<="), (at.Lt, "lt", "<"))


def _checks(model: type[Model], name: str, field: FieldInfo, env: dict[str, Any]) -> list[str]:
    where = f"{model.__name__}.{name}"
    annotation = field.annotation
    if annotation in _PLAIN:
        out = [f"type({name}) is {_PLAIN[annotation]}"]  # strict: no subclasses, no bool for int
    elif isinstance(annotation, type) and issubclass(annotation, Model):
        env[f"_t_{name}"] = annotation
        out = [f"type({name}) is _t_{name}"]  # a validated instance is taken as is
    else:
        raise TypeError(f"fast_init: {where}: no derived check for {annotation!r}")
    for meta in field.metadata:
        if isinstance(meta, at.MinLen):
            out.append(f"len({name}) >= {meta.min_length}")
        elif isinstance(meta, at.MaxLen):
            out.append(f"len({name}) <= {meta.max_length}")
        elif bound := next(((attr, op) for kind, attr, op in _BOUNDS if isinstance(meta, kind)), None):
            out.append(f"{name} {bound[1]} {getattr(meta, bound[0])!r}")
        elif _only_pattern(meta):
            pattern = meta.pattern
            if not (pattern.startswith("^") and pattern.endswith("$")):
                raise TypeError(f"fast_init: {where}: pattern {pattern!r} is not anchored")
            env[f"_p_{name}"] = _matcher(re.compile(pattern))
            out.append(f"_p_{name}({name})")
        else:
            raise TypeError(f"fast_init: {where}: no derived check for {meta!r}")
    return out


def _matcher(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    # The same value (a bundle digest) comes back every turn: remember the last match.
    last: list[str | None] = [None]

    def match(value: str) -> bool:
        if value is last[0]:
            return True
        if pattern.fullmatch(value) is None:
            return False
        last[0] = value
        return True

    return match


def _only_pattern(meta: object) -> bool:
    # StringConstraints(pattern=...) with nothing else set (Digest and friends).
    pattern = getattr(meta, "pattern", None)
    others = ("strip_whitespace", "to_upper", "to_lower", "strict", "min_length", "max_length")
    return isinstance(pattern, str) and all(getattr(meta, o, None) is None for o in others)


def fast_init(cls: Callable[P, M]) -> Callable[P, M]:
    """A keyword-only constructor for ``cls`` equal to ``cls(...)`` for every input."""
    model = cast(type[Model], cls)
    config = model.model_config
    decorators = model.__pydantic_decorators__
    if (
        not config.get("strict") or config.get("extra") != "forbid"
        or decorators.model_validators or decorators.field_validators
        or model.__pydantic_post_init__ or model.__private_attributes__
    ):
        raise TypeError(f"fast_init: {model.__name__} is not a plain strict model")
    env: dict[str, Any] = {"_cls": model, "_new": model.__new__, "_set": object.__setattr__}
    params, checks, items = [], [], []
    for name, field in model.model_fields.items():
        if field.default_factory is not None:
            raise TypeError(f"fast_init: {model.__name__}.{name}: default factories are not derived")
        if field.is_required():
            params.append(name)
        else:
            env[f"_d_{name}"] = field.get_default(call_default_factory=False)
            params.append(f"{name}=_d_{name}")
        checks += _checks(model, name, field, env)
        items.append(f"{name!r}: {name}")
    # One shared set: pydantic copies it before changing it (model_copy), frozen models never.
    env["_all"] = set(model.model_fields)
    source = (
        f"def make(*, {', '.join(params)}):\n"
        f"    if {' and '.join(checks)}:\n"
        "        m = _new(_cls)\n"
        f"        _set(m, '__dict__', {{{', '.join(items)}}})\n"
        "        _set(m, '__pydantic_fields_set__', _all)\n"  # as if every field was given
        "        _set(m, '__pydantic_extra__', None)\n"
        "        _set(m, '__pydantic_private__', None)\n"
        "        return m\n"
        f"    return _cls({', '.join(f'{n}={n}' for n in model.model_fields)})\n"
    )
    exec(compile(source, f"<fast_init {model.__name__}>", "exec"), env)  # generated from the fields above
    return cast(Callable[P, M], env["make"])
