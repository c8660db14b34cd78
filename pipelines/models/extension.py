"""ExtensionManifest: custom nodes, external nodes and runtime adapter plugins.

A custom node declares its IO, streaming mode, cancel behaviour and state
class; its package is versioned on its own and pinned by digest. External or
untrusted code must declare resource and time limits before admission.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.models.base import ArtifactBase, Digest, Model, Name, SemVer, Seq
from pipelines.models.spec import NodeIO, NodeType

__all__ = ["ExtensionManifest", "ExtensionNode", "NodePackageRef", "ResourceLimits"]


class NodePackageRef(Model):
    """A node implementation pinned by digest (built-in, custom or external)."""

    node_type: NodeType
    impl_ref: str = Field(min_length=1)
    version: SemVer
    digest: Digest
    execution_mode: Literal["in_process", "external"]


class ResourceLimits(Model):
    cpu_millis: int = Field(ge=1)
    memory_mb: int = Field(ge=1)
    timeout_ms: int = Field(ge=1)
    max_concurrency: int = Field(ge=1)


class ExtensionNode(Model):
    node_type: NodeType
    io: NodeIO
    providers: Seq[Name] = Field(min_length=1)
    streaming: bool
    cancel: Literal["cooperative", "kill"]
    state: Literal["stateless", "session", "turn"]
    deterministic: bool


class ExtensionManifest(ArtifactBase):
    kind: Literal["ExtensionManifest"]
    type: Literal["node", "external_node", "runtime_adapter"]
    api_version: Literal["rspp.node/v1", "rspp.adapter/v1"]
    trust_level: Literal["trusted", "verified", "untrusted"]
    node: ExtensionNode | None = None
    package: NodePackageRef | None = None
    resource_limits: ResourceLimits | None = None
    capabilities: Seq[Name] = ()

    @model_validator(mode="after")
    def _isolation(self) -> ExtensionManifest:
        # Invariant 16: external/untrusted code runs behind a boundary with limits.
        if self.type != "runtime_adapter" and (self.node is None or self.package is None):
            raise ValueError(f"a {self.type} extension needs 'node' and 'package'")
        if self.package is not None and self.node is not None and self.package.node_type != self.node.node_type:
            raise ValueError("package.node_type must equal node.node_type")
        external = self.type == "external_node" or (
            self.package is not None and self.package.execution_mode == "external"
        )
        if (external or self.trust_level == "untrusted") and self.resource_limits is None:
            raise ValueError("external or untrusted extensions need 'resource_limits'")
        if self.trust_level == "untrusted" and not external:
            raise ValueError("untrusted extensions must run out of process (execution_mode: external)")
        return self
