"""The Python API, shaped like Temporal's replayer.

    result = replay(ContainerLogSource("exports/run-42"))      # -> ReplayResult
    result.raise_on_divergence()                               # DivergenceError
    for turn in replay_many(KafkaLogSource(bootstrap, "prod")):  # streams TurnResults
        ...

``resimulate`` re-executes deterministic nodes; ``bundle`` (a path or a
PipelineBundle) replays the recorded turns against a candidate bundle, which
implies re-simulation: "what would change if this bundle had been live?".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pipelines.bundles import read_bundle
from pipelines.errors import PipelinesError
from pipelines.models.resolved import PipelineBundle
from replay.bundles import BundleIndex, source_bundle_dirs
from replay.checks import PlanChecker
from replay.engine import Engine
from replay.errors import BundleNotFoundError
from replay.evidence import DEFAULT_ARTIFACT, load_rules
from replay.model import DivergenceKind, Position, ReplayResult, TurnResult
from replay.resim import Resimulator
from replay.sources import LogSource
from streams.abi.events import Envelope
from streams.nodes import NodeRegistry

__all__ = ["replay", "replay_many"]

Progress = Callable[[int], None]


def _candidate(bundle: PipelineBundle | Path | str | None) -> PipelineBundle | None:
    if bundle is None or isinstance(bundle, PipelineBundle):
        return bundle
    try:
        return read_bundle(Path(bundle))
    except PipelinesError as exc:
        raise BundleNotFoundError(f"candidate bundle {bundle}: {exc}") from None


def replay_many(source: LogSource, *, resimulate: bool = False,
                bundle: PipelineBundle | Path | str | None = None,
                bundle_dirs: Sequence[Path] = (), registry: NodeRegistry | None = None,
                artifact: Path = DEFAULT_ARTIFACT, progress: Progress | None = None,
                counter: list[int] | None = None) -> Iterator[TurnResult]:
    """Yield one :class:`TurnResult` per turn as soon as its session closes.

    ``registry`` overrides the node implementations re-simulation runs (tests
    use it to prove a changed node is caught). ``counter`` receives the number
    of records read when the iterator is exhausted; so does ``source.integrity``
    (an export's problems against its manifest), which :func:`replay` reports.
    """
    rules = load_rules(artifact)
    index = BundleIndex([*bundle_dirs, *source_bundle_dirs(source)])
    candidate = _candidate(bundle)
    if candidate is not None:
        index.add(candidate)
    # A candidate bundle implies re-simulation; the policy file says what each mode checks.
    policy = rules.policy("resimulate" if resimulate or candidate is not None else "verify")
    resim = None
    if policy.runs(DivergenceKind.OUTPUT):
        resim = Resimulator(registry=registry)
    engine = Engine(rules=rules, plans=PlanChecker(bundles=index, candidate=candidate), resim=resim,
                    policy=policy,
                    check_sequence=not getattr(source, "windowed", False))
    records = iter(source)
    if progress is not None:
        records = _counting(records, progress)
    try:
        yield from engine.run(records)
    finally:
        if resim is not None:
            resim.close()
        if counter is not None:
            counter.append(engine.events)


def _counting(records: Iterator[tuple[Position, Envelope]],
              progress: Progress) -> Iterator[tuple[Position, Envelope]]:
    for n, record in enumerate(records, 1):
        if not n & 0x3FFF:  # every 16k records: cheap enough for the hot loop
            progress(n)
        yield record


def replay(source: LogSource, *, resimulate: bool = False,
           bundle: PipelineBundle | Path | str | None = None, bundle_dirs: Sequence[Path] = (),
           registry: NodeRegistry | None = None, artifact: Path = DEFAULT_ARTIFACT,
           progress: Progress | None = None) -> ReplayResult:
    """Replay the whole log and return every turn's result (never raises on divergence).

    An export's integrity problems (see :class:`~replay.sources.ContainerLogSource`)
    are in ``ReplayResult.integrity`` and make the result fail.
    """
    started = time.perf_counter()
    counter: list[int] = []
    turns = tuple(replay_many(source, resimulate=resimulate, bundle=bundle, bundle_dirs=bundle_dirs,
                              registry=registry, artifact=artifact, progress=progress,
                              counter=counter))
    candidate = _candidate(bundle)
    mode = "candidate" if candidate is not None else "resimulate" if resimulate else "verify"
    return ReplayResult(turns=turns, events=counter[0] if counter else 0,
                        seconds=time.perf_counter() - started, mode=mode, source=source.name,
                        bundle=None if candidate is None else f"{candidate.ref} ({candidate.digest})",
                        notes=tuple(getattr(source, "notes", ())),
                        integrity=tuple(getattr(source, "integrity", ())))
