"""The shipped artifacts: all 11 guide modules exist, validate, and bundles cannot drift."""

from __future__ import annotations

from pipelines.bundles import bundle_json, verify_bundle
from pipelines.models import PipelineBundle, PipelineSpec
from pipelines.shipped import PIPELINES_DIR, build_shipped
from pipelines.validate import ArtifactSet

GUIDE_FIRST_ARTIFACTS = (
    "specs/simple_v1.yaml",
    "profiles/simple_v1.yaml",
    "modules/transcription_normalize_v1.yaml",
    "policies/default_voice_policy_v1.yaml",
    "bundles/voice_assistant_bundle_v1.json",
    "rollouts/canary_10pct_v1.yaml",
    "extensions/custom_sentiment_node_v1.yaml",
    "replay/or02_baseline_v1.yaml",
    "compat/version_skew_policy_v1.yaml",
    "examples/simple_livekit_voice_v1",
    "tests/mvp_gates_manifest_v1.yaml",
)


def test_every_guide_module_has_its_first_artifact_and_a_readme() -> None:
    for rel in GUIDE_FIRST_ARTIFACTS:
        assert (PIPELINES_DIR / rel).exists(), rel
        assert (PIPELINES_DIR / rel.split("/")[0] / "README.md").is_file(), rel


def test_shipped_artifacts_validate_and_cover_every_kind(shipped: ArtifactSet) -> None:
    kinds = {a.model.kind for a in shipped.loaded}
    assert kinds == {
        "PipelineSpec", "ExecutionProfile", "GraphModule", "PolicyOverlay", "PipelineBundle", "RolloutManifest",
        "ExtensionManifest", "ReplayEvidenceManifest", "VersionSkewPolicy", "GatesManifest", "TransportBinding",
    }


def test_simple_spec_is_the_real_voice_graph(shipped: ArtifactSet) -> None:
    spec = shipped.find("PipelineSpec", "simple@1.0.0")
    assert isinstance(spec, PipelineSpec)
    types = {n.id: n.type or n.module for n in spec.nodes}
    assert types == {"stt": "stt.pocketsphinx", "normalize": "transcription_normalize@1.0.0",
                     "respond": "respond.rules", "tts": "tts.espeak_ng"}
    jsgf = str(spec.nodes[0].config["jsgf"])
    for phrase in ("turn on the kitchen lights", "what time is it", "set a timer for five minutes"):
        assert phrase in jsgf
    assert all(e.buffer is not None and e.buffer.max_items for e in spec.edges)


def test_shipped_bundles_equal_a_fresh_build() -> None:
    for rel, bundle in build_shipped().items():
        assert (PIPELINES_DIR / rel).read_bytes() == bundle_json(bundle), f"{rel} drifted: python -m pipelines.shipped"


def test_shipped_bundles_verify(bundle_v1: PipelineBundle, bundle_v1_1: PipelineBundle) -> None:
    verify_bundle(bundle_v1)
    verify_bundle(bundle_v1_1)
    assert bundle_v1.compat_window.abi_version == "1.0.0"
    assert {p.node_type for p in bundle_v1_1.node_digests} - {p.node_type for p in bundle_v1.node_digests} == {
        "ext.sentiment"}
