"""The version-skew window at ingress (docs/architecture.md, invariant 15).

Every ingress frame names its writer schema (Confluent framing: magic byte +
4-byte schema id). The registry records, for each released version of the
envelope subject, the Event ABI version it belongs to; the skew policy
(``pipelines/compat/version_skew_policy_v1.yaml``) says how far that may be
from the runtime's own ABI. A frame written with a version outside the window
is dead-lettered with reason ``schema_version_outside_window: …`` before it is
decoded — even when fastavro could resolve it, the policy says it must not run.

Frames whose schema the registry does not tie to an ABI version (a Confluent
registry keeps no ABI label; the working-tree schema is the runtime's own) pass:
what cannot be judged is left to the codec, which dead-letters unknown ids.
"""

from __future__ import annotations

from pipelines.models.compat import VersionSkewPolicy
from pipelines.skew import abi_skew_problem
from streams.abi.registry import SchemaRegistry, SchemaVersion

__all__ = ["SKEW_REASON", "IngressSkewGate"]

SKEW_REASON = "schema_version_outside_window"
_HEADER_LEN = 5


class IngressSkewGate:
    """Decides, per writer schema id, whether ingress frames are inside the ABI window."""

    def __init__(
        self,
        *,
        policy: VersionSkewPolicy,
        registry: SchemaRegistry,
        subject: str,
        runtime_abi: str,
        own_schema_id: int,
    ) -> None:
        self.policy = policy
        self.registry = registry
        self.subject = subject
        self.runtime_abi = runtime_abi
        self._verdicts: dict[int, str | None] = {own_schema_id: None}

    def check(self, frame: bytes) -> str | None:
        """The DLQ reason for ``frame``'s schema version, or None when it may be processed."""
        if len(frame) < _HEADER_LEN or frame[0] != 0:
            return None  # not a Confluent frame: the codec names the framing problem
        schema_id = int.from_bytes(frame[1:_HEADER_LEN], "big")
        if schema_id not in self._verdicts:
            self._verdicts[schema_id] = self._judge(schema_id)
        return self._verdicts[schema_id]

    def _judge(self, schema_id: int) -> str | None:
        version = self._version(schema_id)
        if version is None or version.abi_version is None:
            return None
        abi = self.policy.abi
        problem = abi_skew_problem(abi, version.abi_version, runtime_abi=self.runtime_abi)
        if problem is None and not abi.runtime_supported.contains(version.abi_version):
            problem = (
                f"ABI {version.abi_version} is outside the supported range "
                f"{abi.runtime_supported.min} <= v < {abi.runtime_supported.max_exclusive}"
            )
        if problem is None:
            return None
        return f"{SKEW_REASON}: {version.label} written outside the window of {self.policy.ref}: {problem}"

    def _version(self, schema_id: int) -> SchemaVersion | None:
        return next(
            (v for v in self.registry.versions(self.subject) if v.schema_id == schema_id), None
        )
