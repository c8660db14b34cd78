"""ArtifactStore immutability and bundle digests/tampering."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from pipelines.bundles import bundle_digest, verify_bundle
from pipelines.errors import (
    ArtifactValidationError,
    BundleTamperedError,
    ImmutableVersionError,
    NotFoundError,
)
from pipelines.models import ExecutionProfile, GraphModule, PipelineBundle, PipelineSpec
from pipelines.store import ArtifactStore, content_digest
from pipelines.validate import ArtifactSet


def test_publish_get_list_and_immutability(tmp_path: Path, shipped: ArtifactSet) -> None:
    store = ArtifactStore(tmp_path)
    profile = shipped.find("ExecutionProfile", "simple@1.0.0")
    assert isinstance(profile, ExecutionProfile)
    ref = store.publish(profile)
    assert store.publish(profile) == ref  # identical content: no-op
    assert store.get_execution_profile("simple@1.0.0") == profile
    assert store.get_by_digest(ref.digest) == profile
    changed = profile.model_copy(update={"mode": "balanced"})
    with pytest.raises(ImmutableVersionError) as err:
        store.publish(changed)
    assert ref.digest in str(err.value) and content_digest(changed) in str(err.value)
    assert [r.ref for r in store.list("ExecutionProfile")] == ["simple@1.0.0"]
    with pytest.raises(NotFoundError):
        store.get_pipeline_spec("simple@9.9.9")


def test_publish_validates_specs_against_stored_modules(tmp_path: Path, shipped: ArtifactSet) -> None:
    store = ArtifactStore(tmp_path)
    spec = shipped.find("PipelineSpec", "simple@1.0.0")
    assert isinstance(spec, PipelineSpec)
    with pytest.raises(ArtifactValidationError, match="unknown module"):
        store.publish(spec)
    module = shipped.find("GraphModule", "transcription_normalize@1.0.0")
    assert isinstance(module, GraphModule)
    store.publish(module)
    store.publish(spec)
    assert store.get_pipeline_spec("simple@1.0.0") == spec


def test_bundle_is_addressed_by_its_digest(tmp_path: Path, bundle_v1: PipelineBundle) -> None:
    store = ArtifactStore(tmp_path)
    stored = store.put_bundle(bundle_v1)
    assert stored.digest == bundle_v1.digest
    assert store.get_bundle(bundle_v1.digest) == bundle_v1
    assert store.get_bundle("voice_assistant@1.0.0") == bundle_v1


def test_tampered_bundle_is_caught(tmp_path: Path, bundle_v1: PipelineBundle) -> None:
    data = bundle_v1.model_dump(mode="json")
    data["resolved_spec"]["lanes"]["data_weight"]["value"] = 9
    tampered = PipelineBundle.model_validate_json(orjson.dumps(data))
    with pytest.raises(BundleTamperedError) as err:
        verify_bundle(tampered)
    assert bundle_v1.digest in str(err.value)
    with pytest.raises(BundleTamperedError):
        ArtifactStore(tmp_path).put_bundle(tampered)
    # Re-signing the digest does not help: pins and resolved spec must agree too.
    data["node_digests"] = data["node_digests"][1:]
    data["digest"] = bundle_digest(data)
    with pytest.raises(ArtifactValidationError, match="node_digests"):
        verify_bundle(PipelineBundle.model_validate_json(orjson.dumps(data)))


def test_corrupt_store_object_is_refused(tmp_path: Path, bundle_v1: PipelineBundle) -> None:
    store = ArtifactStore(tmp_path)
    stored = store.put_bundle(bundle_v1)
    obj = tmp_path / "objects" / f"{stored.digest.removeprefix('sha256:')}.json"
    obj.write_bytes(obj.read_bytes().replace(b'"drop_newest"', b'"drop_oldest"'))
    with pytest.raises(NotFoundError, match="corrupt"):
        store.get_bundle(stored.digest)


_DIGEST_SCRIPT = """
from pipelines.shipped import build_shipped
for rel, b in sorted(build_shipped().items()):
    print(rel, b.digest)
"""


def test_bundle_digest_is_stable_across_hash_seeds(bundle_v1: PipelineBundle, bundle_v1_1: PipelineBundle) -> None:
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT], env=env, capture_output=True, text=True,
                             check=True)
        outputs.add(run.stdout)
    assert len(outputs) == 1
    out = outputs.pop()
    assert bundle_v1.digest in out and bundle_v1_1.digest in out
