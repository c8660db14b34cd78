"""Hostile artifacts: the loader and `rspp validate` refuse them cleanly and cheaply.

``tests/artifacts/test_loader_fuzz.py`` covers ``parse_text`` in-process (tags,
merge keys, alias bombs, duplicate keys, mutated shipped artifacts). This adds
what a user feeding files to the CLI can do: every hostile file goes through a
real ``rspp validate`` subprocess under an address-space limit and a timeout, and
must give exit 1, one-line ``file[:line]: [field: ]message`` errors, no
traceback, in under 5 s. Refs that try to leave the store (``../``, absolute
paths) are refused by the models and by ``ArtifactStore`` itself, and nothing is
written outside the store directory.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import ArtifactError, PipelinesError
from pipelines.loader import MAX_DEPTH, MAX_FILE_BYTES, load_artifact
from pipelines.models.rollout import RolloutManifest
from pipelines.shipped import PIPELINES_DIR
from pipelines.store import ArtifactStore

REPO = Path(__file__).resolve().parents[2]
SPEC = PIPELINES_DIR / "specs" / "simple_v1.yaml"
ROLLOUT = PIPELINES_DIR / "rollouts" / "canary_10pct_v1.yaml"
MEMORY_LIMIT = 2 << 30  # address space of the CLI child (imports map ~1 GiB of it)
# Fails a hang, not a slow run: speed is measured in bench/, never asserted in tests.
HANG_GUARD_S = 120.0


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _alias_bomb() -> str:
    rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
    return "\n".join(rows) + "\n"


def _with(base: Path, edit: dict[str, object]) -> str:
    data = yaml.safe_load(base.read_text())
    for dotted, value in edit.items():
        *parents, leaf = dotted.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[leaf] = value
    return yaml.safe_dump(data)


HOSTILE: dict[str, str | bytes] = {
    "bomb.yaml": _alias_bomb(),
    "recursive.yaml": "a: &a [1, *a]\n",
    "deep_flow.yaml": "a: " + "[" * 20_000 + "]" * 20_000 + "\n",  # PyYAML's composer recursion
    "deep_block.yaml": "".join("  " * i + f"k{i}:\n" for i in range(400)) + "  " * 400 + "x: 1\n",
    "deep.json": "[" * 200_000 + "]" * 200_000,
    "deep_obj.json": '{"a":' * 50_000 + "1" + "}" * 50_000,
    "huge.yaml": "# " + "x" * (MAX_FILE_BYTES + 10) + "\n",
    "inf.json": '{"kind": "PipelineSpec", "apiVersion": 1e999999}',
    "lone_surrogate.json": '{"kind": "PipelineSpec", "x": "\\ud800"}',
    "binary.yaml": b"\xff\xfe\x00\x01garbage\x00",
    "nul.yaml": "kind: PipelineSpec\nmetadata: {name: \x00}\n",
    "python_tag.yaml": "kind: !!python/object/apply:os.system [touch /tmp/rspp-pwned]\n",
    "top_list.json": "[1, 2, 3]",
    "empty.yaml": "",
    "long_key.yaml": "kind: PipelineSpec\n" + "k" * 200_000 + ": 1\n",
    "wide.json": json.dumps({"kind": "PipelineSpec", **{f"f{i}": i for i in range(3_000)}}),
    "traversal_name.yaml": _with(SPEC, {"metadata.name": "../../etc/passwd"}),
    "absolute_name.yaml": _with(SPEC, {"metadata.name": "/etc/passwd"}),
    "traversal_ref.yaml": _with(ROLLOUT, {"baseline.bundle": "../../etc/passwd@1.0.0"}),
    "absolute_ref.yaml": _with(ROLLOUT, {"candidate.bundle": "/etc/passwd"}),
    "traversal_digest.yaml": _with(ROLLOUT, {"rollback.digest": "sha256:../../../etc/passwd"}),
}


def _validate(paths: list[Path], cwd: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run `rspp validate`; returns its result and the peak RSS (KiB) of that child alone
    (RUSAGE_CHILDREN would also count every earlier child of the test process)."""
    out, err = cwd / "validate.out", cwd / "validate.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", "from streams.cli import main; main()", "validate",
             *map(str, paths)],
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            preexec_fn=_limit_memory,  # noqa: PLW1509 (only setrlimit, async-signal-safe)
            env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "RSPP_HOME": str(cwd / "home"),
                 "PYTHONPATH": str(REPO)},
        )
    deadline = time.monotonic() + HANG_GUARD_S
    while True:  # os.wait4 reaps this child and reports its own rusage
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError(f"validate hung for {HANG_GUARD_S:.0f}s")
        time.sleep(0.05)
    child.returncode = os.waitstatus_to_exitcode(status)
    result = subprocess.CompletedProcess(
        child.args, child.returncode, out.read_text(errors="replace"), err.read_text(errors="replace")
    )
    out.unlink()
    err.unlink()
    return result, usage.ru_maxrss


def _write_hostile(work: Path) -> list[Path]:
    paths = []
    for name, content in sorted(HOSTILE.items()):
        path = work / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        paths.append(path)
    return paths


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_loader_refuses_hostile_file_with_issues(name: str, tmp_path: Path) -> None:
    (path,) = (p for p in _write_hostile(tmp_path) if p.name == name)
    loaded, issues = load_artifact(path)
    assert loaded is None and issues
    for issue in issues:
        text = str(issue)
        assert text.startswith(str(path)) and "\n" not in text and len(text) < 600, text[:300]
    assert {p.name for p in tmp_path.iterdir()} == set(HOSTILE)  # nothing written


def test_validate_cli_refuses_every_hostile_file_cleanly(tmp_path: Path) -> None:
    """One `rspp validate` over all of them: each named, one line per issue, exit 1, bounded."""
    work = tmp_path / "work"
    work.mkdir()
    paths = _write_hostile(work)
    before = sorted(tmp_path.rglob("*"))
    proc, peak_kib = _validate(paths, work)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"exit {proc.returncode}:\n{out[-2000:]}"
    assert "Traceback" not in out and "RecursionError" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.strip()]
    named = {p for p in paths if any(line.startswith(str(p)) for line in lines)}
    assert named == set(paths), f"files without an error line: {sorted(set(paths) - named)}"
    strays = [line for line in lines if not line.startswith(str(work))]
    assert len(strays) <= 1, strays  # at most a closing summary line
    assert all(len(line) < 600 for line in lines)
    assert peak_kib < 512 * 1024, f"validate peaked at {peak_kib // 1024} MiB"
    assert sorted(tmp_path.rglob("*")) == before  # no store, no stray output
    assert not Path("/tmp/rspp-pwned").exists()


def test_refs_and_names_that_leave_the_store_name_their_field(tmp_path: Path) -> None:
    for name, field in (
        ("traversal_name.yaml", "metadata.name"),
        ("absolute_name.yaml", "metadata.name"),
        ("traversal_ref.yaml", "baseline.bundle"),
        ("absolute_ref.yaml", "candidate.bundle"),
        ("traversal_digest.yaml", "rollback.digest"),
    ):
        path = tmp_path / name
        path.write_text(str(HOSTILE[name]))
        loaded, issues = load_artifact(path)
        assert loaded is None, name
        assert any(i.dotted == field for i in issues), (name, [str(i) for i in issues])
        assert all(str(i).startswith(str(path)) for i in issues)


def test_deep_yaml_nesting_is_an_issue_not_a_recursion_error(tmp_path: Path) -> None:
    # Found by this suite: PyYAML's composer recursed past the interpreter limit
    # (RecursionError traceback) before the walker's MAX_DEPTH could refuse the file.
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    loaded, issues = load_artifact(path)
    assert loaded is None
    assert [i.message for i in issues] == [f"invalid YAML: nesting deeper than {MAX_DEPTH} levels"]


def test_store_never_writes_outside_its_root(tmp_path: Path) -> None:
    store_root = tmp_path / "a" / "b" / "store"
    store = ArtifactStore(store_root)
    valid, issues = load_artifact(ROLLOUT)
    assert valid is not None, issues
    good = valid.model
    assert isinstance(good, RolloutManifest)
    hostile_names = ["../../../escape", "/tmp/rspp-escape", "..", "a/../../..", "x\x00y"]
    hostile_versions = ["../../../../escape", "/tmp/rspp-escape-v", "1.0.0/../../../../x"]
    attempts = [(n, good.metadata.version) for n in hostile_names]
    attempts += [(good.metadata.name, v) for v in hostile_versions]
    for name, version in attempts:
        # model_construct skips validation, as a buggy caller or mutated instance would.
        meta = good.metadata.model_construct(**{**good.metadata.__dict__, "name": name, "version": version})
        evil = good.model_construct(**{**good.__dict__, "metadata": meta})
        with pytest.raises(ArtifactError):
            store.publish(evil)
    for ref in ("../../../etc/passwd@1.0.0", "/etc/passwd", "x@1.0.0/../../..", "a@../../1.0.0"):
        with pytest.raises((PipelinesError, ValueError)):
            store.get(RolloutManifest, ref)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert all(w.startswith("a/b/store/") for w in written), written
    assert not Path("/tmp/rspp-escape").exists()
    # The store still works for the real thing.
    assert store.publish(good).ref == good.ref


_garbage = st.one_of(
    st.binary(max_size=400),
    st.text(alphabet=st.sampled_from(list("[]{}:&*!,-'\"#|>\n\t ab1.@/\\")), max_size=400),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=_garbage, suffix=st.sampled_from([".yaml", ".json"]))
def test_load_artifact_never_raises_on_garbage(raw: str | bytes, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"g{suffix}"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    loaded, issues = load_artifact(path)
    if loaded is None:
        assert issues and all("\n" not in str(i) and str(i).startswith(str(path)) for i in issues)
