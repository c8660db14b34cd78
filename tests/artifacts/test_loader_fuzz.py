"""Loader safety and a fuzz test: mutated artifacts are either valid or cleanly rejected."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import Issue
from pipelines.loader import MAX_FILE_BYTES, LoadedArtifact, load_artifact, parse_text
from pipelines.shipped import PIPELINES_DIR
from pipelines.validate import ArtifactSet, check_set

SOURCES = sorted(p for p in PIPELINES_DIR.rglob("*") if p.suffix in {".yaml", ".json"})


def test_unknown_tags_and_merge_keys_are_refused() -> None:
    for text in ("a: !!python/object/apply:os.system [ls]", "a: !custom 1", "b: &x {c: 1}\na: {<<: *x}"):
        value, _, issues = parse_text(text, file="f.yaml", json=False)
        assert value is None and len(issues) == 1


def test_alias_bomb_and_recursion_are_bounded() -> None:
    rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
    _, _, issues = parse_text("\n".join(rows), file="f.yaml", json=False)
    assert "alias bomb" in issues[0].message
    _, _, issues = parse_text("a: &a [1, *a]", file="f.yaml", json=False)
    assert "recursive alias" in issues[0].message


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    loaded, issues = load_artifact(big)
    assert loaded is None and "expected at most" in issues[0].message


def test_duplicate_key_has_its_line() -> None:
    _, _, issues = parse_text("kind: X\nmetadata: {}\nkind: Y\n", file="f.yaml", json=False)
    assert (issues[0].line, issues[0].message) == (3, "duplicate key 'kind'")


def _mutate(value: Any, draw: Callable[..., Any], depth: int = 0) -> Any:
    if isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        action = draw(st.sampled_from(["drop", "recurse", "recurse", "replace", "extra"]))
        out = dict(value)
        if action == "drop":
            del out[key]
        elif action == "replace":
            out[key] = draw(_scalars)
        elif action == "extra":
            out[draw(st.text(min_size=1, max_size=8))] = draw(_scalars)
        else:
            out[key] = _mutate(value[key], draw, depth + 1)
        return out
    if isinstance(value, list) and value:
        i = draw(st.integers(0, len(value) - 1))
        action = draw(st.sampled_from(["drop", "dup", "recurse", "recurse"]))
        out_list = list(value)
        if action == "drop":
            del out_list[i]
        elif action == "dup":
            out_list.append(copy.deepcopy(value[i]))
        else:
            out_list[i] = _mutate(value[i], draw, depth + 1)
        return out_list
    return draw(_scalars)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                     st.text(max_size=30), st.just("sha256:" + "0" * 64), st.just("1.0.0"), st.just([]),
                     st.just({}))


@pytest.fixture(scope="module")
def originals() -> list[tuple[Path, Any]]:
    return [(p, yaml.safe_load(p.read_text())) for p in SOURCES]


def _check_clean(issues: list[Issue]) -> None:
    for issue in issues:
        line = str(issue)
        assert isinstance(issue, Issue) and "\n" not in line and "Traceback" not in line and issue.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), pick=st.integers(0, len(SOURCES) - 1), rounds=st.integers(1, 3))
def test_mutated_artifacts_are_valid_or_cleanly_rejected(
    tmp_path: Path, originals: list[tuple[Path, Any]], data: st.DataObject, pick: int, rounds: int,
) -> None:
    path, value = originals[pick]
    for _ in range(rounds):
        value = _mutate(value, data.draw)
    target = tmp_path / f"mutant{path.suffix}"
    target.write_text(yaml.safe_dump(value) if path.suffix == ".yaml" else json.dumps(value))
    loaded, issues = load_artifact(target)
    _check_clean(issues)
    if loaded is None:
        assert issues
        return
    others = [LoadedArtifact(path=p, model=m) for p, m in _shipped_models() if p != path]
    _check_clean(check_set(ArtifactSet((*others, loaded))))


@settings(max_examples=80, deadline=None)
@given(pick=st.integers(0, len(SOURCES) - 1), cut=st.floats(0, 1), junk=st.binary(max_size=12))
def test_mangled_bytes_never_crash(pick: int, cut: float, junk: bytes) -> None:
    text = SOURCES[pick].read_bytes()
    at = int(len(text) * cut)
    mangled = (text[:at] + junk + text[at + len(junk):]).decode("utf-8", errors="replace")
    _, _, issues = parse_text(mangled, file="m", json=SOURCES[pick].suffix == ".json")
    _check_clean(issues)


_CACHE: list[tuple[Path, Any]] = []


def _shipped_models() -> list[tuple[Path, Any]]:
    if not _CACHE:
        for p in SOURCES:
            loaded, _ = load_artifact(p)
            assert loaded is not None
            _CACHE.append((p, loaded.model))
    return _CACHE
