"""Generator of the shipped bundles under ``pipelines/bundles/`` (and the rollout's pins).

    .venv/bin/python -m pipelines.shipped          # rebuild after changing a source artifact

A test rebuilds them and compares byte for byte, so the shipped bundles cannot
drift from the spec, profile, policies, modules and extensions they pin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.bundles import BundleInput, build_bundle, bundle_json
from pipelines.errors import ArtifactValidationError, Issue
from pipelines.loader import load_artifact
from pipelines.models import (
    ArtifactBase,
    ExecutionProfile,
    ExtensionManifest,
    GraphModule,
    PipelineBundle,
    PipelineSpec,
    PolicyOverlay,
)

__all__ = ["PIPELINES_DIR", "RECIPES", "ROLLOUT_FILE", "Recipe", "build_shipped", "main", "pin_rollout"]

PIPELINES_DIR = Path(__file__).resolve().parent
ROLLOUT_FILE = "rollouts/canary_10pct_v1.yaml"


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    out: str
    name: str
    version: str
    description: str
    spec: str
    profile: str
    policies: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()


RECIPES: tuple[Recipe, ...] = (
    Recipe(out="bundles/voice_assistant_bundle_v1.json", name="voice_assistant", version="1.0.0",
           description="simple/v1 voice assistant: pocketsphinx grammar, rules, espeak-ng.",
           spec="specs/simple_v1.yaml", profile="profiles/simple_v1.yaml",
           policies=("policies/default_voice_policy_v1.yaml",),
           modules=("modules/transcription_normalize_v1.yaml",)),
    Recipe(out="bundles/voice_assistant_bundle_v1_1.json", name="voice_assistant", version="1.1.0",
           description="1.0.0 plus the optional sentiment insert (canary candidate).",
           spec="specs/simple_v1.yaml", profile="profiles/simple_v1.yaml",
           policies=("policies/default_voice_policy_v1.yaml", "policies/sentiment_insert_v1.yaml"),
           modules=("modules/transcription_normalize_v1.yaml",),
           extensions=("extensions/custom_sentiment_node_v1.yaml",)),
    Recipe(out="examples/simple_livekit_voice_v1/bundle.json", name="simple_livekit_voice", version="1.0.0",
           description="The quickstart example: the demo's voice assistant behind a LiveKit room bridge.",
           spec="examples/simple_livekit_voice_v1/pipeline.yaml", profile="profiles/simple_v1.yaml",
           policies=("examples/simple_livekit_voice_v1/policy.yaml",),
           modules=("modules/transcription_normalize_v1.yaml",)),
)


def _load(root: Path, rel: str) -> ArtifactBase:
    loaded, issues = load_artifact(root / rel)
    if loaded is None:
        raise ArtifactValidationError(issues)
    return loaded.model


def _typed(root: Path, rel: str, model: type[ArtifactBase]) -> ArtifactBase:
    artifact = _load(root, rel)
    if not isinstance(artifact, model):
        raise ArtifactValidationError([Issue(rel, ("kind",), f"got {artifact.kind} (expected {model.__name__})")])
    return artifact


def build_shipped(root: Path = PIPELINES_DIR) -> dict[str, PipelineBundle]:
    """Fresh builds of every shipped bundle, keyed by path relative to ``root``."""
    out: dict[str, PipelineBundle] = {}
    for r in RECIPES:
        modules = [_typed(root, m, GraphModule) for m in r.modules]
        inp = BundleInput(
            name=r.name, version=r.version, description=r.description,
            spec=_typed(root, r.spec, PipelineSpec),  # type: ignore[arg-type]
            profile=_typed(root, r.profile, ExecutionProfile),  # type: ignore[arg-type]
            policies=tuple(_typed(root, p, PolicyOverlay) for p in r.policies),  # type: ignore[misc]
            modules={m.ref: m for m in modules},  # type: ignore[misc]
            extensions=tuple(_typed(root, e, ExtensionManifest) for e in r.extensions),  # type: ignore[misc]
        )
        out[r.out] = build_bundle(inp)
    return out


def pin_rollout(text: str, bundles: dict[str, PipelineBundle]) -> str:
    """Rewrite the ``digest:`` following each ``bundle: name@version`` line to the built digest."""
    by_ref = {b.ref: b.digest for b in bundles.values()}

    def repl(match: re.Match[str]) -> str:
        digest = by_ref.get(match.group(2))
        return match.group(0) if digest is None else f"{match.group(1)}{match.group(3)}{digest}"

    return re.sub(r"(bundle: (\S+)\n)(\s+digest: )sha256:[0-9a-f]{64}", repl, text)


def main() -> None:
    bundles = build_shipped()
    for rel, bundle in bundles.items():
        (PIPELINES_DIR / rel).write_bytes(bundle_json(bundle))
        print(f"{rel}: {bundle.ref} {bundle.digest}")
    rollout = PIPELINES_DIR / ROLLOUT_FILE
    if rollout.exists():
        rollout.write_text(pin_rollout(rollout.read_text(), bundles))


if __name__ == "__main__":
    main()
