"""ScaffoldCompiler: defaulting sources and graph checks."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.compiler import ScaffoldCompiler
from pipelines.errors import CompileError
from pipelines.models import ExecutionProfile, GraphModule, PipelineSpec, PolicyOverlay
from pipelines.validate import ArtifactSet


def _get(shipped: ArtifactSet) -> tuple[PipelineSpec, ExecutionProfile, PolicyOverlay, dict[str, GraphModule]]:
    spec, profile = shipped.find("PipelineSpec", "simple@1.0.0"), shipped.find("ExecutionProfile", "simple@1.0.0")
    policy = shipped.find("PolicyOverlay", "default_voice@1.0.0")
    assert isinstance(spec, PipelineSpec) and isinstance(profile, ExecutionProfile)
    assert isinstance(policy, PolicyOverlay)
    return spec, profile, policy, shipped.modules()


def _spec(**overrides: Any) -> PipelineSpec:
    base: dict[str, Any] = {
        "apiVersion": "rspp.dev/v1", "kind": "PipelineSpec", "metadata": {"name": "t", "version": "1.0.0"},
        "io": {"input": "text/transcript", "output": "text/transcript", "entry": "a", "exit": "b"},
        "nodes": [{"id": "a", "type": "text.normalize", "budget": {"timeout_ms": 5}},
                  {"id": "b", "type": "text.normalize", "budget": {"timeout_ms": 5}}],
        "edges": [{"source": "a", "target": "b"}],
    }
    base.update(overrides)
    return PipelineSpec.model_validate(base)


def _profile(**overrides: Any) -> ExecutionProfile:
    base: dict[str, Any] = {"apiVersion": "rspp.dev/v1", "kind": "ExecutionProfile",
                            "metadata": {"name": "p", "version": "1.0.0"}}
    base.update(overrides)
    return ExecutionProfile.model_validate(base)


def _messages(exc: CompileError) -> list[str]:
    return [i.message for i in exc.issues]


def test_every_source_layer_shows_up(shipped: ArtifactSet) -> None:
    spec, profile, policy, modules = _get(shipped)
    resolved = ScaffoldCompiler().normalize(spec, profile, (policy,), modules=modules)
    nodes = {n.id: n for n in resolved.nodes}
    assert nodes["stt"].timeout_ms.source == "policy:default_voice"  # policy beats spec 12000
    assert nodes["stt"].timeout_ms.value == 10000
    assert nodes["respond"].timeout_ms.source == "spec"
    assert nodes["normalize.clean"].timeout_ms.source == "module default"
    assert nodes["stt"].retries.value == 1
    assert nodes["normalize.clean"].retries.source == "profile"
    assert nodes["normalize.clean"].degrade.source == "simple/v1 default"
    assert resolved.lanes.data_weight.value == 8 and resolved.lanes.data_weight.source == "spec"
    assert resolved.admission.max_concurrent_turns_per_session.source == "profile"
    edges = {(e.source, e.target): e for e in resolved.edges}
    assert edges[("stt", "normalize.clean")].max_items.value == 16
    assert edges[("normalize.fillers", "respond")].lane.source == "simple/v1 default"


def test_without_policy_spec_values_win(shipped: ArtifactSet) -> None:
    spec, profile, _, modules = _get(shipped)
    nodes = {n.id: n for n in ScaffoldCompiler().normalize(spec, profile, modules=modules).nodes}
    assert (nodes["stt"].timeout_ms.value, nodes["stt"].timeout_ms.source) == (12000, "spec")
    assert (nodes["tts"].timeout_ms.value, nodes["tts"].timeout_ms.source) == (2000, "profile")


def test_compile_is_deterministic(shipped: ArtifactSet) -> None:
    spec, profile, policy, modules = _get(shipped)
    a = ScaffoldCompiler().normalize(spec, profile, (policy,), modules=modules)
    b = ScaffoldCompiler().normalize(spec, profile, (policy,), modules=modules)
    assert a.model_dump_json() == b.model_dump_json()


def test_missing_budget_is_an_error() -> None:
    spec = _spec(nodes=[{"id": "a", "type": "text.normalize"}, {"id": "b", "type": "text.normalize",
                                                                  "budget": {"timeout_ms": 5}}])
    with pytest.raises(CompileError) as err:
        ScaffoldCompiler().normalize(spec, _profile())
    assert any("node 'a' has no budget" in m for m in _messages(err.value))


def test_cycle_unknown_ref_and_unreachable() -> None:
    spec = _spec(
        nodes=[{"id": n, "type": "text.normalize", "budget": {"timeout_ms": 5}} for n in ("a", "b", "c", "d")],
        edges=[{"source": "a", "target": "b"}, {"source": "b", "target": "c"}, {"source": "c", "target": "b"},
               {"source": "b", "target": "zzz"}],
    )
    issues = ScaffoldCompiler().validate_spec(spec)
    text = " | ".join(i.message for i in issues)
    assert "cycle b -> c -> b" in text
    assert "unknown node 'zzz'" in text
    assert "'d' is unreachable" in text


def test_unbounded_buffer_and_bad_watermarks() -> None:
    spec = _spec(edges=[{"source": "a", "target": "b", "buffer": {"max_items": 0}}])
    with pytest.raises(CompileError) as err:
        ScaffoldCompiler().normalize(spec, _profile())
    assert any("unbounded" in m for m in _messages(err.value))
    spec = _spec(edges=[{"source": "a", "target": "b", "buffer": {"max_items": 4, "high_watermark": 8}}])
    with pytest.raises(CompileError) as err:
        ScaffoldCompiler().normalize(spec, _profile())
    assert any("expected low_watermark < high_watermark <= max_items" in m for m in _messages(err.value))


def test_blocking_data_edge_rejected_in_low_latency_mode_only() -> None:
    spec = _spec(edges=[{"source": "a", "target": "b", "buffer": {"overflow": "block"}}])
    with pytest.raises(CompileError):
        ScaffoldCompiler().normalize(spec, _profile(mode="low_latency"))
    resolved = ScaffoldCompiler().normalize(spec, _profile(mode="balanced"))
    assert resolved.edges[0].overflow.value == "block"


@pytest.mark.parametrize("weights", [{"data": 1, "telemetry": 5}, {"data": 0, "telemetry": 1},
                                     {"control": 1, "data": 2}, {"data": 999, "telemetry": 999}])
def test_lane_weights_that_do_not_make_sense(weights: dict[str, int]) -> None:
    with pytest.raises(CompileError):
        ScaffoldCompiler().normalize(_spec(lanes={"weights": weights}), _profile())


def test_io_type_mismatch_on_edge() -> None:
    spec = _spec(io={"input": "audio/pcm16", "output": "text/transcript", "entry": "a", "exit": "b"},
                 nodes=[{"id": "a", "type": "stt.pocketsphinx", "config": {"keywords": ["stop"]},
                         "budget": {"timeout_ms": 5}},
                        {"id": "b", "type": "tts.espeak_ng", "config": {"voice": "en"}, "budget": {"timeout_ms": 5}}])
    issues = ScaffoldCompiler().validate_spec(spec)
    assert any("carries text/transcript (expected text/reply" in i.message for i in issues)


def test_bad_node_config_is_reported_with_its_path() -> None:
    spec = _spec(nodes=[{"id": "a", "type": "text.normalize", "budget": {"timeout_ms": 5}, "config": {"lower": 1}},
                        {"id": "b", "type": "text.normalize", "budget": {"timeout_ms": 5}}])
    with pytest.raises(CompileError) as err:
        ScaffoldCompiler().normalize(spec, _profile())
    assert [i.dotted for i in err.value.issues] == ["nodes.0.config.lower"]


def test_policy_targets_unknown_node(shipped: ArtifactSet) -> None:
    spec, profile, _, modules = _get(shipped)
    policy = PolicyOverlay.model_validate({
        "apiVersion": "rspp.dev/v1", "kind": "PolicyOverlay", "metadata": {"name": "x", "version": "1.0.0"},
        "providers": [{"node": "nope", "order": ["pocketsphinx"]}]})
    with pytest.raises(CompileError) as err:
        ScaffoldCompiler().normalize(spec, profile, (policy,), modules=modules)
    assert any("unknown node 'nope'" in m for m in _messages(err.value))


def test_insert_needs_the_extension(shipped: ArtifactSet) -> None:
    spec, profile, policy, modules = _get(shipped)
    insert = shipped.find("PolicyOverlay", "sentiment_insert@1.0.0")
    assert isinstance(insert, PolicyOverlay)
    with pytest.raises(CompileError) as err:
        ScaffoldCompiler().normalize(spec, profile, (policy, insert), modules=modules)
    assert any("unknown node type 'ext.sentiment'" in m for m in _messages(err.value))
    resolved = ScaffoldCompiler().normalize(spec, profile, (policy, insert), modules=modules,
                                            extensions=shipped.extensions())
    assert resolved.inserts[0].after == "normalize.fillers" and resolved.inserts[0].before == ("respond",)
