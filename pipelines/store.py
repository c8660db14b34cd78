"""ArtifactStore: a directory of content-addressed, immutable artifacts.

Layout under ``root``::

    objects/<hex>.json                     canonical JSON, named by its sha256
    refs/<Kind>/<name>/<version>           the digest that name@version points at

Publishing validates first (bundles are verified, specs and modules graph-checked
against the modules already in the store). A version, once published, is
immutable: the first digest published for a name@version is kept (refs are
created exclusively and never rewritten, so two racing publishers cannot both
win), and publishing, archiving or verifying other content under it raises
:class:`~pipelines.errors.ImmutableVersionError` naming both digests;
publishing identical content again is a no-op. A bundle's address is its own
``digest``.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pipelines.bundles import bundle_digest, verify_bundle
from pipelines.canonical import canonical_json, digest_of
from pipelines.compiler import ScaffoldCompiler
from pipelines.errors import (
    ArtifactError,
    ArtifactValidationError,
    ImmutableVersionError,
    Issue,
    NotFoundError,
)
from pipelines.models import KINDS
from pipelines.models.base import DIGEST_PATTERN, ArtifactBase, parse_ref, semver_key
from pipelines.models.policy import PolicyOverlay
from pipelines.models.profile import ExecutionProfile
from pipelines.models.resolved import PipelineBundle
from pipelines.models.spec import GraphModule, PipelineSpec

__all__ = ["ArtifactStore", "StoredRef", "content_digest", "default_store_root"]

A = TypeVar("A", bound=ArtifactBase)


def default_store_root() -> Path:
    """``$RSPP_STORE``, else ``$RSPP_HOME/store`` (``~/.cache/rspp/store`` when RSPP_HOME is unset,
    like the broker cache)."""
    store = os.environ.get("RSPP_STORE")
    if store:
        return Path(store)
    home = os.environ.get("RSPP_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "rspp") / "store"


def content_digest(artifact: ArtifactBase) -> str:
    """The address of an artifact: a bundle's own digest, else sha256 of its canonical JSON."""
    return bundle_digest(artifact) if isinstance(artifact, PipelineBundle) else digest_of(artifact)


@dataclass(frozen=True, slots=True)
class StoredRef:
    kind: str
    name: str
    version: str
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _check_root(self) -> None:
        # Writing refs/ and objects/ into some unrelated directory (a typo'd --store, /etc)
        # would litter it: a store is a directory holding them, or an empty or new one.
        if self.root.exists() and not self.root.is_dir():
            raise NotFoundError(f"store {self.root}: not a directory")
        if not self.root.is_dir():
            return
        # One listing decides (a concurrent publisher may create objects/ meanwhile).
        names = {entry.name for entry in self.root.iterdir()}
        if names and not names & {"refs", "objects"}:
            raise NotFoundError(f"store {self.root}: a non-empty directory that is not an artifact store")

    # -- writing ---------------------------------------------------------------------------
    def publish(self, artifact: ArtifactBase) -> StoredRef:
        """Validate, then write immutably. Returns where it lives."""
        self._check_root()
        self._validate(artifact)
        digest = content_digest(artifact)
        self.check_version(artifact, digest)
        obj = self._object_path(digest)
        if not obj.exists():
            self._atomic_write(obj, canonical_json(artifact))
        self._claim(artifact, digest)
        return StoredRef(artifact.kind, artifact.metadata.name, artifact.metadata.version, digest)

    def published_digest(self, artifact: ArtifactBase) -> str | None:
        """The digest this store keeps for the artifact's name@version, if any."""
        path = self._ref_path(artifact.kind, artifact.metadata.name, artifact.metadata.version)
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def check_version(self, artifact: ArtifactBase, digest: str | None = None) -> None:
        """Raise ImmutableVersionError if name@version is kept here under another digest."""
        digest = digest or content_digest(artifact)
        existing = self.published_digest(artifact)
        if existing is not None and existing != digest:
            raise ImmutableVersionError(kind=artifact.kind, ref=artifact.ref, existing=existing,
                                        attempted=digest)

    def _claim(self, artifact: ArtifactBase, digest: str) -> None:
        """Point name@version at ``digest`` unless a ref exists; the first digest wins."""
        path = self._ref_path(artifact.kind, artifact.metadata.name, artifact.metadata.version)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _scratch_name(path)
        tmp.write_bytes(digest.encode() + b"\n")
        try:
            os.link(tmp, path)  # atomic and exclusive: never replaces an existing ref
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        self.check_version(artifact, digest)  # a racing publisher may have won with other content

    def put_bundle(self, bundle: PipelineBundle) -> StoredRef:
        return self.publish(bundle)

    def archive_bundle(self, bundle: PipelineBundle) -> str:
        """Keep a verified bundle a processor runs, addressable by its digest.

        What a processor ran must stay findable for replay and audit. Running is
        publishing: an unclaimed name@version is claimed by this digest, and a
        bundle re-hashed under a name@version kept with another digest is refused
        (ImmutableVersionError) before anything is written.
        """
        self._check_root()
        verify_bundle(bundle, source=bundle.origin)
        digest = content_digest(bundle)
        self.check_version(bundle, digest)
        obj = self._object_path(digest)
        if not obj.exists():
            self._atomic_write(obj, canonical_json(bundle))
        self._claim(bundle, digest)
        return digest

    def _validate(self, artifact: ArtifactBase) -> None:
        if isinstance(artifact, PipelineBundle):
            verify_bundle(artifact, source=artifact.origin)
        elif isinstance(artifact, PipelineSpec | GraphModule):
            modules = {r.ref: self.get(GraphModule, r.ref) for r in self.list("GraphModule")}
            issues = ScaffoldCompiler().validate_spec(artifact, modules=modules)
            if issues:
                raise ArtifactValidationError(issues)

    # -- reading ---------------------------------------------------------------------------
    def get(self, model: type[A], ref: str) -> A:
        """Fetch ``name@version`` of a kind, re-validated on the way out."""
        try:
            name, version = parse_ref(ref)
        except ValueError as exc:
            raise NotFoundError(str(exc)) from None
        kind = _kind_of(model)
        path = self._ref_path(kind, name, version)
        if not path.exists():
            raise NotFoundError(f"{kind} {ref} is not in the store {self.root} (expected `rspp bundle build` "
                                "or a publish first)")
        return self._load(model, path.read_text().strip())

    def get_by_digest(self, digest: str) -> ArtifactBase:
        if not re.match(DIGEST_PATTERN, digest):
            raise NotFoundError(f"bad digest {digest!r} (expected sha256:<64 hex>)")
        path = self._object_path(digest)
        if not path.exists():
            raise NotFoundError(f"no object {digest} in the store {self.root}")
        kind = _peek_kind(path.read_bytes())
        return self._load(KINDS[kind], digest)

    def list(self, kind: str | None = None) -> list[StoredRef]:
        """Every published name@version (sorted by kind, name, semver)."""
        out: list[StoredRef] = []
        base = self.root / "refs"
        kinds = [kind] if kind else sorted(p.name for p in base.iterdir()) if base.exists() else []
        for k in kinds:
            for name_dir in sorted((base / k).iterdir()) if (base / k).exists() else []:
                for ver in name_dir.iterdir():
                    out.append(StoredRef(k, name_dir.name, ver.name, ver.read_text().strip()))
        return sorted(out, key=lambda r: (r.kind, r.name, semver_key(r.version)))

    def get_pipeline_spec(self, ref: str) -> PipelineSpec:
        return self.get(PipelineSpec, ref)

    def get_execution_profile(self, ref: str) -> ExecutionProfile:
        return self.get(ExecutionProfile, ref)

    def get_policy_overlay(self, ref: str) -> PolicyOverlay:
        return self.get(PolicyOverlay, ref)

    def get_bundle(self, ref_or_digest: str) -> PipelineBundle:
        if ref_or_digest.startswith("sha256:"):
            found = self.get_by_digest(ref_or_digest)
            if not isinstance(found, PipelineBundle):
                raise NotFoundError(f"{ref_or_digest} is a {found.kind}, not a PipelineBundle")
            return found
        return self.get(PipelineBundle, ref_or_digest)

    # -- internals -------------------------------------------------------------------------
    def _load(self, model: type[A], digest: str) -> A:
        data = self._object_path(digest).read_bytes()
        artifact = model.model_validate_json(data)
        if content_digest(artifact) != digest:
            raise NotFoundError(f"store object {digest} is corrupt: content hashes to {content_digest(artifact)}")
        return artifact

    def _object_path(self, digest: str) -> Path:
        return self.root / "objects" / f"{digest.removeprefix('sha256:')}.json"

    def _ref_path(self, kind: str, name: str, version: str) -> Path:
        # Models validate names and versions, but one built with ``model_construct`` (or a
        # mutated instance) skips that: never let ``../`` in a ref leave the store.
        if kind not in KINDS:
            raise ArtifactError(Issue(str(self.root), ("kind",), f"got {kind!r} (expected an artifact kind)"))
        try:
            parse_ref(f"{name}@{version}")
        except ValueError as exc:
            raise ArtifactError(Issue(str(self.root), ("metadata",), str(exc))) from None
        return self.root / "refs" / kind / name / version

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _scratch_name(path)
        tmp.write_bytes(data)
        tmp.replace(path)


def _scratch_name(path: Path) -> Path:
    """A temporary name beside ``path`` that no other writer uses: not just the pid, since
    threads of one process publish concurrently too."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def _kind_of(model: type[ArtifactBase]) -> str:
    for kind, cls in KINDS.items():
        if cls is model:
            return kind
    raise NotFoundError(f"{model.__name__} is not an artifact kind")


def _peek_kind(data: bytes) -> str:
    import orjson

    kind = orjson.loads(data).get("kind")
    if kind not in KINDS:
        raise NotFoundError(f"store object has unknown kind {kind!r}")
    return str(kind)
