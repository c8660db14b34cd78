"""Finding the bundles recorded turns reference: by digest (plans) or by ref (ADMIT).

Looked up, in order, in the caller's directories (an export's ``bundles/``),
the shipped ``pipelines/bundles/`` and the local ArtifactStore. Every bundle is
verified against its digest before use: a tampered bundle must not make a
tampered plan look right.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from pipelines.bundles import read_bundle, verify_bundle
from pipelines.errors import PipelinesError
from pipelines.models.resolved import PipelineBundle
from pipelines.shipped import PIPELINES_DIR
from pipelines.store import ArtifactStore, default_store_root
from replay.errors import BundleNotFoundError

__all__ = ["BundleIndex", "source_bundle_dirs"]


class BundleIndex:
    def __init__(self, dirs: Iterable[Path] = (), *, shipped: bool = True,
                 store: ArtifactStore | None = None, use_default_store: bool = True) -> None:
        self.dirs = [*dirs, *([PIPELINES_DIR / "bundles"] if shipped else [])]
        self._store = store
        if store is None and use_default_store and default_store_root().is_dir():
            self._store = ArtifactStore(default_store_root())
        self._paths: dict[str, Path] | None = None
        self._refs: dict[str, str] = {}
        self._loaded: dict[str, PipelineBundle] = {}

    def _scan(self) -> dict[str, Path]:
        if self._paths is None:
            self._paths = {}
            for d in self.dirs:
                for path in sorted(d.glob("*.json")) if d.is_dir() else ():
                    try:
                        doc = orjson.loads(path.read_bytes())
                    except (OSError, orjson.JSONDecodeError):
                        continue
                    if isinstance(doc, dict) and doc.get("kind") == "PipelineBundle":
                        digest = str(doc.get("digest"))
                        meta = doc.get("metadata") or {}
                        self._paths.setdefault(digest, path)
                        self._refs.setdefault(f"{meta.get('name')}@{meta.get('version')}", digest)
        return self._paths

    def add(self, bundle: PipelineBundle) -> None:
        """Make ``bundle`` resolvable (a candidate given on the command line)."""
        verify_bundle(bundle, source=bundle.ref)
        self._loaded[bundle.digest] = bundle

    def get(self, digest: str, *, wanted_by: str = "") -> PipelineBundle:
        """The verified bundle with ``digest``; BundleNotFoundError names who wanted it."""
        hit = self._loaded.get(digest)
        if hit is not None:
            return hit
        path = self._scan().get(digest)
        try:
            if path is not None:
                bundle = read_bundle(path)
                verify_bundle(bundle, source=str(path))
            elif self._store is not None:
                bundle = self._store.get_bundle(digest)
            else:
                bundle = None
        except PipelinesError as exc:
            raise BundleNotFoundError(f"bundle {digest}{wanted_by}: {exc}") from None
        if bundle is None:
            where = ", ".join(str(d) for d in self.dirs) or "no directories"
            raise BundleNotFoundError(f"bundle {digest}{wanted_by} not found in {where} or the store")
        self._loaded[digest] = bundle
        return bundle

    def digest_for_ref(self, ref: str) -> str | None:
        """Digest of the bundle ``name@version`` if a directory holds it."""
        self._scan()
        return self._refs.get(ref)

    def path_of(self, digest: str) -> Path | None:
        return self._scan().get(digest)


def source_bundle_dirs(source: object) -> list[Path]:
    """Where a log source keeps its own bundles: an export's ``bundles/`` (and its root)."""
    path = getattr(source, "path", None)
    if not isinstance(path, Path):
        return []
    root = path if path.is_dir() else path.parent
    return [root / "bundles", root]
