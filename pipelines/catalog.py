"""Built-in node types: IO media types, providers, config schema, package pin.

The compiler checks node configs against these schemas and pins each node
type's package by digest in bundles. Extension manifests add node types at
compile time (:meth:`NodeCatalog.with_extensions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field, model_validator

from pipelines.canonical import digest_of
from pipelines.models.base import Model, Seq
from pipelines.models.extension import ExtensionManifest, NodePackageRef

__all__ = [
    "BUILTIN_NODE_VERSION",
    "DropFillersConfig",
    "EspeakConfig",
    "NodeCatalog",
    "NodeType",
    "NormalizeConfig",
    "PocketsphinxConfig",
    "ReplyRule",
    "RulesConfig",
]

BUILTIN_NODE_VERSION = "1.0.0"


class PocketsphinxConfig(Model):
    """Decode against a grammar or keyword list: the default LM mis-hears synthetic voices."""

    sample_rate_hz: Literal[16000] = 16000
    jsgf: str | None = None
    keywords: Seq[str] = ()
    keyword_threshold: float = 1e-20
    emit_partials: bool = True

    @model_validator(mode="after")
    def _grammar_or_keywords(self) -> PocketsphinxConfig:
        if not self.jsgf and not self.keywords:
            raise ValueError("needs 'jsgf' or 'keywords' (expected the utterances to recognise)")
        if self.jsgf and not self.jsgf.lstrip().startswith("#JSGF"):
            raise ValueError("'jsgf' must start with a '#JSGF V1.0;' header")
        return self


class NormalizeConfig(Model):
    lowercase: bool = True
    strip_punctuation: bool = True
    collapse_whitespace: bool = True
    numbers_to_digits: bool = True
    # Empty by default: the text.drop_fillers node owns filler removal; the resolved
    # view states it, so the runtime never falls back to a hidden list.
    fillers: Seq[str] = ()


class DropFillersConfig(Model):
    words: Seq[str] = Field(min_length=1)


class ReplyRule(Model):
    intent: str = Field(min_length=1)
    match_any: Seq[str] = Field(min_length=1)
    reply: str = Field(min_length=1)


class RulesConfig(Model):
    rules: Seq[ReplyRule] = Field(min_length=1)
    default_reply: str = Field(min_length=1)


class EspeakConfig(Model):
    voice: str = Field(min_length=1)
    sample_rate_hz: Literal[16000] = 16000
    rate_wpm: int = Field(default=160, ge=80, le=450)
    pitch: int = Field(default=50, ge=0, le=99)
    chunk_ms: int = Field(default=20, ge=5, le=100)
    realtime: bool = False  # emit chunks at playback pace, as a streaming TTS feeding a live call


@dataclass(frozen=True, slots=True)
class NodeType:
    """What the compiler knows about one node type."""

    name: str
    input: str
    output: str
    providers: tuple[str, ...]
    package: NodePackageRef
    config_model: type[Model] | None  # None: free-form config (extensions)
    deterministic: bool


def _builtin(
    name: str, *, io: tuple[str, str], providers: tuple[str, ...], impl: str, config: type[Model],
    deterministic: bool,
) -> NodeType:
    descriptor = {
        "node_type": name, "impl_ref": impl, "version": BUILTIN_NODE_VERSION,
        "execution_mode": "in_process", "io": list(io), "config_schema": config.model_json_schema(),
    }
    package = NodePackageRef(
        node_type=name, impl_ref=impl, version=BUILTIN_NODE_VERSION, digest=digest_of(descriptor),
        execution_mode="in_process",
    )
    return NodeType(
        name=name, input=io[0], output=io[1], providers=providers, package=package,
        config_model=config, deterministic=deterministic,
    )


_BUILTINS: tuple[NodeType, ...] = (
    _builtin("stt.pocketsphinx", io=("audio/pcm16", "text/transcript"), providers=("pocketsphinx",),
             impl="streams.nodes.stt:PocketsphinxNode", config=PocketsphinxConfig, deterministic=True),
    _builtin("text.normalize", io=("text/transcript", "text/transcript"), providers=("builtin",),
             impl="streams.nodes.text:NormalizeNode", config=NormalizeConfig, deterministic=True),
    _builtin("text.drop_fillers", io=("text/transcript", "text/transcript"), providers=("builtin",),
             impl="streams.nodes.text:DropFillersNode", config=DropFillersConfig, deterministic=True),
    _builtin("respond.rules", io=("text/transcript", "text/reply"), providers=("rules",),
             impl="streams.nodes.respond:RulesNode", config=RulesConfig, deterministic=True),
    _builtin("tts.espeak_ng", io=("text/reply", "audio/pcm16"), providers=("espeak_ng",),
             impl="streams.nodes.tts:EspeakNode", config=EspeakConfig, deterministic=False),
)


@dataclass(frozen=True, slots=True)
class NodeCatalog:
    types: dict[str, NodeType] = field(default_factory=lambda: {t.name: t for t in _BUILTINS})

    def get(self, name: str) -> NodeType | None:
        return self.types.get(name)

    def with_extensions(self, extensions: tuple[ExtensionManifest, ...]) -> NodeCatalog:
        types = dict(self.types)
        for ext in extensions:
            if ext.node is None or ext.package is None:
                continue
            types[ext.node.node_type] = NodeType(
                name=ext.node.node_type, input=ext.node.io.input, output=ext.node.io.output,
                providers=tuple(ext.node.providers), package=ext.package, config_model=None,
                deterministic=ext.node.deterministic,
            )
        return NodeCatalog(types=types)
