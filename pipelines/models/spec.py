"""PipelineSpec and GraphModule: the declared node/edge graph (guide: specs, modules).

A spec node is either a concrete node (``type``) or a reference to a reusable
graph module (``module: name@version``) that the compiler expands in place.
Every optional field left out here is filled by the compiler from the profile,
a policy overlay or the simple/v1 defaults, and the resolved view says which.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, StringConstraints, model_validator

from pipelines.models.base import ArtifactBase, Model, Name, Ref, Seq

__all__ = [
    "MEDIA_TYPE_PATTERN",
    "Budget",
    "BufferSpec",
    "DegradeAction",
    "EdgeSpec",
    "Fallback",
    "GraphIO",
    "GraphModule",
    "LaneSpec",
    "MediaType",
    "NodeIO",
    "NodeId",
    "NodeSpec",
    "NodeType",
    "OverflowMode",
    "PipelineSpec",
    "TurnBoundary",
    "TurnSpec",
]

MEDIA_TYPE_PATTERN = r"^[a-z]+/[a-z0-9][a-z0-9_.+-]*$"
MediaType = Annotated[str, StringConstraints(pattern=MEDIA_TYPE_PATTERN)]
NodeId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
NodeType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$")]
OverflowMode = Literal["drop_oldest", "drop_newest", "block"]
DegradeAction = Literal["fail_turn", "skip", "text_only", "canned_reply"]
TurnBoundary = Literal["final_transcript", "end_of_utterance", "either"]


class NodeIO(Model):
    input: MediaType
    output: MediaType


class Budget(Model):
    timeout_ms: int | None = Field(default=None, ge=1, le=600_000)


class Fallback(Model):
    """Fallback intent: try providers in order, retry, then degrade."""

    providers: Seq[Name] | None = None
    retries: int | None = Field(default=None, ge=0, le=10)
    degrade: DegradeAction | None = None
    reply: str | None = None


class NodeSpec(Model):
    id: NodeId
    type: NodeType | None = None
    module: Ref | None = None
    io: NodeIO | None = None
    config: dict[str, JsonValue] = Field(default_factory=dict)
    budget: Budget | None = None
    fallback: Fallback | None = None

    @model_validator(mode="after")
    def _type_or_module(self) -> NodeSpec:
        if (self.type is None) == (self.module is None):
            raise ValueError("a node needs exactly one of 'type' or 'module'")
        if self.module is not None and (self.io or self.config or self.budget or self.fallback):
            raise ValueError("a module node takes only 'id' and 'module'; configure the module")
        return self


class BufferSpec(Model):
    """Edge buffer bounds. ``max_items: 0`` means unbounded and is rejected by the compiler."""

    max_items: int | None = Field(default=None, ge=0)
    high_watermark: int | None = Field(default=None, ge=0)
    low_watermark: int | None = Field(default=None, ge=0)
    overflow: OverflowMode | None = None
    max_block_ms: int | None = Field(default=None, ge=0)


class EdgeSpec(Model):
    source: NodeId
    target: NodeId
    lane: Literal["data", "telemetry"] | None = None
    buffer: BufferSpec | None = None


class GraphIO(Model):
    input: MediaType
    output: MediaType
    entry: NodeId
    exit: NodeId


class TurnSpec(Model):
    boundary: TurnBoundary | None = None
    timeout_ms: int | None = Field(default=None, ge=1)


class LaneSpec(Model):
    """Lane weights: control is always strict priority; data:telemetry is weighted."""

    control: Literal["strict"] | None = None
    weights: dict[str, int] | None = None


class PipelineSpec(ArtifactBase):
    kind: Literal["PipelineSpec"]
    profile: Ref | None = None  # the profile this spec is authored against (validate uses it)
    io: GraphIO
    nodes: Seq[NodeSpec] = Field(min_length=1)
    edges: Seq[EdgeSpec] = ()
    turn: TurnSpec | None = None
    lanes: LaneSpec | None = None


class GraphModule(ArtifactBase):
    """A reusable subgraph imported by specs; its values are 'module default'."""

    kind: Literal["GraphModule"]
    io: GraphIO
    nodes: Seq[NodeSpec] = Field(min_length=1)
    edges: Seq[EdgeSpec] = ()
    compatible_api: Seq[Literal["rspp.dev/v1"]] = ("rspp.dev/v1",)
