"""The bundle store keeps the first digest of each name@version and refuses any other.

A bundle re-hashed under an already-published name@version (here: only its
description changed, so it is otherwise a valid bundle) must be refused by
publish, archiving, ``rspp bundle verify`` and ``rspp run``, naming both digests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from pipelines.bundles import bundle_digest, verify_bundle
from pipelines.errors import ImmutableVersionError
from pipelines.models import PipelineBundle
from pipelines.shipped import PIPELINES_DIR
from pipelines.store import ArtifactStore
from streams.cli import main

SHIPPED = PIPELINES_DIR / "bundles" / "voice_assistant_bundle_v1.json"
REPO = Path(__file__).resolve().parents[2]


def _rehashed(bundle: PipelineBundle, tmp_path: Path, note: str = "rebuilt locally") -> Path:
    doc = bundle.model_dump(mode="json")
    doc["metadata"]["description"] = note
    doc["digest"] = bundle_digest(doc)
    verify_bundle(PipelineBundle.model_validate(doc))  # an honest bundle, only not the published one
    path = tmp_path / f"rehashed-{abs(hash(note))}.json"
    path.write_bytes(orjson.dumps(doc))
    return path


def _load(path: Path) -> PipelineBundle:
    return PipelineBundle.model_validate_json(path.read_bytes())


def test_archive_claims_the_first_digest_and_refuses_a_rehash(
        tmp_path: Path, bundle_v1: PipelineBundle) -> None:
    store = ArtifactStore(tmp_path / "store")
    assert store.archive_bundle(bundle_v1) == bundle_v1.digest
    assert store.published_digest(bundle_v1) == bundle_v1.digest  # running is publishing
    assert store.archive_bundle(bundle_v1) == bundle_v1.digest  # same content: no-op
    rehashed = _load(_rehashed(bundle_v1, tmp_path))
    for act in (store.archive_bundle, store.publish):
        with pytest.raises(ImmutableVersionError) as err:
            act(rehashed)
        assert str(err.value) == (
            f"PipelineBundle voice_assistant@1.0.0 is already published as {bundle_v1.digest}; "
            f"refusing different content {rehashed.digest} (expected a new version)")
    assert not (tmp_path / "store" / "objects" / f"{rehashed.digest[7:]}.json").exists()
    assert store.get_bundle("voice_assistant@1.0.0") == bundle_v1


def test_racing_publishers_leave_exactly_one_digest(
        tmp_path: Path, bundle_v1: PipelineBundle) -> None:
    store = ArtifactStore(tmp_path / "store")
    contenders = [bundle_v1, *(_load(_rehashed(bundle_v1, tmp_path, f"build {i}")) for i in range(5))]
    won: list[str] = []
    lost: list[ImmutableVersionError] = []
    barrier = threading.Barrier(len(contenders))

    def publish(bundle: PipelineBundle) -> None:
        barrier.wait()
        try:
            won.append(store.publish(bundle).digest)
        except ImmutableVersionError as exc:
            lost.append(exc)

    threads = [threading.Thread(target=publish, args=(b,)) for b in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = store.published_digest(bundle_v1)
    assert won == [kept] and len(lost) == len(contenders) - 1
    assert all(exc.existing == kept for exc in lost)


def test_bundle_verify_refuses_a_rehash_of_a_published_version(
        tmp_path: Path, bundle_v1: PipelineBundle, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    ArtifactStore(store).publish(bundle_v1)
    rehashed = _rehashed(bundle_v1, tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["bundle", "verify", str(rehashed), "--store", str(store)])
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.count("\n") == 1
    assert bundle_v1.digest in err and _load(rehashed).digest in err
    with pytest.raises(SystemExit) as info:
        main(["bundle", "verify", str(SHIPPED), "--store", str(store)])
    assert info.value.code in (None, 0)


@pytest.mark.kafka
def test_rspp_run_refuses_a_rehashed_bundle_before_running(
        kafka_bootstrap: str, tmp_path: Path, bundle_v1: PipelineBundle) -> None:
    store = tmp_path / "store"
    ArtifactStore(store).publish(bundle_v1)
    rehashed = _rehashed(bundle_v1, tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", "from streams.cli import main; main()", "run", "--prefix",
         "never-used-rehash", "--no-apply-topics", "--bundle", str(rehashed),
         "--bootstrap", kafka_bootstrap],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
        env={**os.environ, "RSPP_STORE": str(store), "PYTHONPATH": str(REPO)},
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert lines[-1] == (
        f"rspp: error: PipelineBundle voice_assistant@1.0.0 is already published as "
        f"{bundle_v1.digest}; refusing different content {_load(rehashed).digest} "
        "(expected a new version)")
    assert all(not line.startswith("Traceback") for line in lines)
