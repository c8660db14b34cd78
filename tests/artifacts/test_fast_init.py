"""The per-turn snapshot constructors are derived from the models and equal them on any input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, JsonValue, ValidationError, field_validator

from pipelines.models import plan as pm
from pipelines.models.base import Digest, Model, Seq
from pipelines.models.fast import fast_init

_values = (
    st.text(max_size=300) | st.integers(-3, 2**64) | st.booleans() | st.none() | st.floats()
    | st.sampled_from(["sha256:" + "a" * 64, "sha256:" + "a" * 64 + "\n", "sha256:A"])
)
PAIRS: list[tuple[type[Model], Callable[..., Model]]] = [
    (pm.SessionSnapshot, pm.session_snapshot),
    (pm.TurnOpenRequest, pm.turn_open_request),
    (pm.LeaseSnapshot, pm.lease_snapshot),
    (pm.RoutingSnapshot, pm.routing_snapshot),
]


def _outcome(call: Any) -> Any:
    try:
        made = call()
    except ValidationError as exc:
        return "error", str(exc)
    return "ok", type(made), made.model_dump(mode="json"), {k: type(v) for k, v in made.__dict__.items()}


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_derived_constructors_equal_the_models(data: st.DataObject) -> None:
    model, fast = data.draw(st.sampled_from(PAIRS))
    names = [n for n, f in model.model_fields.items()
             if f.is_required() or data.draw(st.booleans())]
    kwargs = {n: data.draw(_values) for n in names}
    assert _outcome(lambda: fast(**kwargs)) == _outcome(lambda: model(**kwargs))


def test_ids_over_the_limit_are_refused_on_the_hot_path_too() -> None:
    # The hand-written fast path this replaced checked only "non-empty string".
    long = "x" * (pm.MAX_ID_LENGTH + 1)
    with pytest.raises(ValidationError, match="at most 256 characters"):
        pm.session_snapshot(tenant_id="t", session_id=long, pinned_bundle_digest="sha256:" + "a" * 64,
                            next_seq=0, last_epoch=0)
    with pytest.raises(ValidationError, match="at most 256 characters"):
        pm.turn_open_request(turn_id="t", trigger="x", correlation_id=long, opened_at_us=0)


def test_a_new_field_needs_no_edit_beyond_the_model() -> None:
    class Snapshot(Model):
        region: str = Field(min_length=2, max_length=4)
        shard: int = Field(default=1, gt=0, lt=9)
        digest: Digest

    make = fast_init(Snapshot)
    digest = "sha256:" + "b" * 64
    assert make(region="eu", digest=digest) == Snapshot(region="eu", digest=digest)
    for bad in ({"region": "e"}, {"region": "eu", "shard": 9}, {"region": "eu", "shard": True}):
        with pytest.raises(ValidationError):
            make(digest=digest, **bad)


def test_what_cannot_be_derived_is_refused_at_import() -> None:
    class Listy(Model):
        items: Seq[str] = ()

    class Jsony(Model):
        blob: dict[str, JsonValue]

    class Checked(Model):
        name: str

        @field_validator("name")
        @classmethod
        def _upper(cls, value: str) -> str:
            return value.upper()

    models: tuple[Any, ...] = (Listy, Jsony, Checked)
    for model in models:
        with pytest.raises(TypeError, match="fast_init"):
            fast_init(model)
