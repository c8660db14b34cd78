"""Session pinning: every turn of a session runs on the bundle it was admitted under.

A processor runs one bundle for new sessions, but a session restored from the changelog
(after a restart, a rebalance or a redeploy with another bundle) keeps the bundle its
ADMIT recorded: its snapshot names the digest, and the bundle is loaded from the
artifact store, where every processor archives what it runs. A session whose bundle
cannot be loaded is never switched silently; the engine drains it with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines.models.resolved import PipelineBundle
from streams.runtime.errors import ProcessorError
from streams.runtime.planning import TurnPlanner
from streams.runtime.sessions import SessionState

__all__ = ["PinnedBundleError", "PinnedBundles"]


class PinnedBundleError(ProcessorError):
    """The bundle a session is pinned to cannot be loaded here."""


class PinnedBundles:
    """Turn planners by bundle digest: the processor's own bundle plus any a live session
    is pinned to, loaded once on first use."""

    def __init__(
        self,
        *,
        default: PipelineBundle,
        load: Callable[[str], PipelineBundle],
        processor_id: str,
        prefix: str,
    ) -> None:
        self.default = TurnPlanner(bundle=default, processor_id=processor_id, prefix=prefix)
        self._load = load
        self._processor_id = processor_id
        self._prefix = prefix
        self._planners: dict[str, TurnPlanner] = {default.digest: self.default}
        self._refused: dict[str, str] = {}

    def pin(self, session: SessionState) -> None:
        """A session admitted now is pinned to the processor's own bundle."""
        session.bundle_id = self.default.bundle.bundle_id
        session.bundle_digest = self.default.bundle.digest

    def planner_for(self, session: SessionState) -> TurnPlanner:
        """The planner of the session's pinned bundle; :class:`PinnedBundleError` if it cannot
        be had (snapshots written before digests were recorded name only ``name@version``)."""
        key = session.bundle_digest or session.bundle_id
        found = self._planners.get(key)
        if found is not None:
            return found
        if session.bundle_digest is None and session.bundle_id == self.default.bundle.bundle_id:
            return self.default
        if key in self._refused:
            raise PinnedBundleError(self._refused[key])
        try:
            bundle = self._load(key)
        except Exception as exc:  # any failure to load is the same answer: do not switch
            why = f"pinned bundle {session.bundle_id} ({key}) cannot be loaded: {exc}"
            self._refused[key] = why
            raise PinnedBundleError(why) from None
        if session.bundle_digest is not None and bundle.digest != session.bundle_digest:
            why = f"pinned bundle {key} resolved to another digest {bundle.digest}"
            self._refused[key] = why
            raise PinnedBundleError(why)
        planner = TurnPlanner(bundle=bundle, processor_id=self._processor_id, prefix=self._prefix)
        self._planners[key] = planner
        return planner
