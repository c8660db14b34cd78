"""Apache Avro's own Java compatibility cases (as data) give the same verdict here, from every source.

``data/avro_java_suite.json`` holds the schema pairs of Avro's Java
schema-compatibility tests with the verdict Avro expects. Each pair is checked
by the verdict engine, then the way a user would: the writer in a directory, a
git commit and a registry, the reader as the new file, BACKWARD.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.abi.compat import CompatMode, Previous, PreviousVersions, check_against, check_schemas
from streams.abi.registry import ConfluentRegistry

SUITE = json.loads((Path(__file__).parent / "data" / "avro_java_suite.json").read_text())
SCHEMAS: dict[str, Any] = SUITE["schemas"]
PAIRS: list[dict[str, Any]] = SUITE["pairs"]
VALIDATION: list[dict[str, Any]] = SUITE["validation"]


def _pair_id(case: dict[str, Any]) -> str:
    return f"{case['from'].removeprefix('TestSchema')}:{case['reader']}<-{case['writer']}"


def _subject(schema: Any, stem: str = "s") -> str:
    """The subject of a schema in a file: its full name, or (unnamed) the file's stem."""
    if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
        name = str(schema["name"])
        namespace = schema.get("namespace")
        return f"{namespace}.{name}" if namespace and "." not in name else name
    return stem


def test_the_suite_is_all_there() -> None:
    # Guards the port itself: every class of the Java suite contributes, both verdicts occur.
    sources = {c["from"].split(".")[0] for c in [*PAIRS, *VALIDATION]}
    assert {
        "TestSchemaCompatibility",
        "TestSchemaCompatibilityTypeMismatch",
        "TestSchemaCompatibilityMissingUnionBranch",
        "TestSchemaCompatibilityNameMismatch",
        "TestSchemaCompatibilityMissingEnumSymbols",
        "TestSchemaCompatibilityFixedSizeMismatch",
        "TestSchemaCompatibilityReaderFieldMissingDefaultValue",
        "TestSchemaCompatibilityMultiple",
        "TestSchemaCompatibilityEnumDefaults",
        "TestSchemaValidation",
    } <= sources
    assert len(PAIRS) >= 140 and len(VALIDATION) >= 18
    assert {c["compatible"] for c in PAIRS} == {True, False}


@pytest.mark.parametrize("case", PAIRS, ids=_pair_id)
def test_engine_gives_avros_verdict(case: dict[str, Any]) -> None:
    found = check_against(
        SCHEMAS[case["reader"]], [Previous("writer", SCHEMAS[case["writer"]])], CompatMode.BACKWARD
    )
    assert (not found) is case["compatible"], [i.line() for i in found]
    # Reasons are path-level and name the older version.
    assert all(i.path and i.rule and i.against == "writer" for i in found)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@dataclass(frozen=True)
class Layout:
    """Per case: the old file in a directory and at git HEAD, the new file in the work tree."""

    old: Path
    repo: Path


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    root = tmp_path_factory.mktemp("suite")
    old, repo = root / "old", root / "repo"
    for i, case in enumerate(PAIRS):
        writer = SCHEMAS[case["writer"]]
        name = f"{_subject(writer)}.avsc"
        for base in (old, repo):
            (base / f"c{i}").mkdir(parents=True)
            (base / f"c{i}" / name).write_text(json.dumps(writer))
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "writers")
    for i, case in enumerate(PAIRS):
        name = f"{_subject(SCHEMAS[case['writer']])}.avsc"
        (repo / f"c{i}" / name).write_text(json.dumps(SCHEMAS[case["reader"]]))
    yield Layout(old=old, repo=repo)


@pytest.mark.parametrize("index", range(len(PAIRS)), ids=[_pair_id(c) for c in PAIRS])
def test_same_verdict_from_dir_git_and_registry(layout: Layout, index: int) -> None:
    case = PAIRS[index]
    writer = SCHEMAS[case["writer"]]
    new_file = layout.repo / f"c{index}" / f"{_subject(writer)}.avsc"
    registry = ConfluentRegistry(f"mock://avro-suite-{index}")
    registry.register(_subject(writer), writer)
    sources: list[str | PreviousVersions] = [
        str(layout.old / f"c{index}"),
        "git:HEAD",
        PreviousVersions(label="registry mock", registry=registry),
    ]
    verdicts = []
    for source in sources:
        report = check_schemas(new_file, against=source, mode=CompatMode.BACKWARD)
        assert report.empty_reason is None  # something was compared, every time
        verdicts.append(report.ok)
    assert verdicts == [case["compatible"]] * 3


def _history_dir(directory: Path, versions: list[Any]) -> None:
    directory.mkdir()
    for number, schema in enumerate(versions, start=1):
        (directory / f"Evt.v{number}.avsc").write_text(json.dumps(schema))


@pytest.mark.parametrize(
    "case",
    VALIDATION,
    ids=[f"{c['from'].split('.')[-1]}:{c['mode']}:{c['new']}" for c in VALIDATION],
)
def test_validation_strategies_by_mode(case: dict[str, Any], tmp_path: Path) -> None:
    """canRead/canBeRead/mutualRead x latest/all are BACKWARD/FORWARD/FULL (_TRANSITIVE)."""
    mode = CompatMode(case["mode"])
    previous = [SCHEMAS[name] for name in case["previous"]]
    new = SCHEMAS[case["new"]]
    engine = check_against(new, [Previous(f"v{i}", s) for i, s in enumerate(previous)], mode)
    assert (not engine) is case["compatible"]
    # The same history as files in a directory: --against it, and as the directory's own history.
    _history_dir(tmp_path / "history", previous)
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "Evt.avsc").write_text(json.dumps(new))
    assert (
        check_schemas(
            tmp_path / "new" / "Evt.avsc", against=str(tmp_path / "history"), mode=mode
        ).ok
        is case["compatible"]
    )
    _history_dir(tmp_path / "own", [*previous, new])
    assert check_schemas(tmp_path / "own", mode=mode).ok is case["compatible"]
    # The same history at a git commit, and in a registry: the same verdict.
    repo = tmp_path / "repo"
    _history_dir(repo, previous)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "history")
    (repo / "Evt.avsc").write_text(json.dumps(new))
    by_git = check_schemas(repo / "Evt.avsc", against="git:HEAD", mode=mode)
    registry = ConfluentRegistry(f"mock://avro-validation-{tmp_path.name}")
    for schema in previous:
        registry.register(_subject(schema, stem="Evt"), schema)
    by_registry = check_schemas(
        repo / "Evt.avsc", against=PreviousVersions(label="registry", registry=registry), mode=mode
    )
    for report in (by_git, by_registry):
        assert report.subjects[0].history == len(set(case["previous"]))
        assert report.ok is case["compatible"]
