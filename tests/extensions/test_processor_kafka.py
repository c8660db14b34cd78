"""A real-broker run: misbehaving isolated nodes fail their own turns, nothing else.

One bundle inserts four bad extension nodes (abort, spin, hog, garbage) after
``normalize``. Each bad session says its node's trigger word; good sessions
talk normally in between. The log must show one NODE_ERROR + TURN_ABORT per
bad turn, naming the node and the failure, every good turn committed, and a
sound log (lifecycle, epochs, correlation) — the processor never went down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.bundles import BundleInput, build_bundle
from pipelines.loader import load_artifact
from pipelines.models import (
    ExecutionProfile,
    ExtensionManifest,
    GraphModule,
    PipelineSpec,
    PolicyOverlay,
)
from pipelines.models.resolved import PipelineBundle
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.client import VoiceClient
from streams.extensions import ExtensionRegistry
from streams.runtime.processor import ProcessorConfig
from streams.testing import ProcessorThread, read_log
from streams.topics import TopicLayout, apply_topics
from tests.extensions.conftest import BUDGET_MS, MARGIN_S, bad_manifest

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2] / "pipelines"
BAD = ("abort", "spin", "hog", "garbage")
EXPECTED = {
    "abort": "WorkerCrashedError: ext.bad_abort: worker pid",
    # The worker's deadline (budget - 50 ms) normally fires before the graph's own budget;
    # on a loaded box the graph's may win ("node 'bad_spin' overran its budget"): same outcome.
    "spin": "overran its budget",
    "hog": "WorkerMemoryError: ext.bad_hog: node exceeded its 64 MB memory limit",
    "garbage": "WorkerProtocolError: ext.bad_garbage: worker pid",
}


def _load(rel: str) -> object:
    loaded, issues = load_artifact(ROOT / rel)
    assert loaded is not None, issues
    return loaded.model


def _bundle(
    modules: tuple[str, ...] = BAD, manifests: tuple[ExtensionManifest, ...] = ()
) -> PipelineBundle:
    inserts = [
        {"id": f"bad_{m}", "after": "normalize", "default_enabled": True,
         "node": {"id": f"bad_{m}", "type": f"ext.bad_{m}", "config": {},
                  "budget": {"timeout_ms": BUDGET_MS}}}
        for m in modules
    ]
    policy = PolicyOverlay.model_validate({
        "apiVersion": "rspp.dev/v1", "kind": "PolicyOverlay",
        "metadata": {"name": "bad_inserts", "version": "1.0.0"}, "inserts": inserts,
    })
    module = _load("modules/transcription_normalize_v1.yaml")
    assert isinstance(module, GraphModule)
    spec, profile = _load("specs/simple_v1.yaml"), _load("profiles/simple_v1.yaml")
    assert isinstance(spec, PipelineSpec) and isinstance(profile, ExecutionProfile)
    default_policy = _load("policies/default_voice_policy_v1.yaml")
    assert isinstance(default_policy, PolicyOverlay)
    return build_bundle(BundleInput(
        name="bad_extensions", version="1.0.0", spec=spec, profile=profile,
        policies=(default_policy, policy), modules={module.ref: module},
        extensions=manifests or tuple(bad_manifest(m) for m in modules),
    ))


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _closed_at_least(running: ProcessorThread, turns: int) -> Callable[[], bool]:
    def closed() -> bool:
        stats = running.processor.stats
        return stats.turns_committed + stats.turns_aborted >= turns

    return closed


def test_bad_extensions_fail_only_their_own_turns(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    bundle = _bundle()
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=2))
    extensions = ExtensionRegistry([(f"bad_{m}.yaml", bad_manifest(m)) for m in BAD], pool_size=2)
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=bundle, drain_grace_s=10,
        store=tmp_path / "store", registry=extensions.node_registry(bundle=bundle, strict=True),
    )
    try:
        with ProcessorThread(config) as running:
            client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
            good = [client.open_session(f"good{n}") for n in range(3)]
            bad = {m: client.open_session(f"bad_{m}") for m in BAD}
            client.flush()
            # Wait for the opens: a transcript sent in the same batch can overtake its
            # session's open across lanes (a runtime race, reported separately).
            _wait_for(lambda: running.processor.stats.sessions_admitted >= len(good) + len(BAD),
                      30, "sessions admitted")
            turns = 0
            for m in BAD:  # one misbehaviour at a time, with good turns around it
                for s in good:
                    s.send_transcript("what time is it")
                bad[m].send_transcript(f"please {m} now")
                client.flush()
                turns += len(good) + 1
                _wait_for(_closed_at_least(running, turns), 30, f"turns after {m}")
            for s in good:
                s.send_transcript("play some music")
            client.flush()
            turns += len(good)
            _wait_for(_closed_at_least(running, turns), 30, "the last good turns")
            stats = running.processor.stats
    finally:
        extensions.close()

    rows = read_log(kafka_bootstrap, prefix, partitions=2)
    rows = read_log(kafka_bootstrap, prefix, partitions=2)
    failures = [(r.event.session_id, r.event.node_id, r.event.payload.message)
                for r in rows if isinstance(r.event.payload, ev.NodeError)]
    assert stats.turns_aborted == len(BAD), failures
    assert stats.turns_committed == turns - len(BAD)
    assert check_log(rows, store=tmp_path / "store") == []
    by_session: dict[str, list[ev.Envelope]] = {}
    for r in rows:
        by_session.setdefault(r.event.session_id, []).append(r.event)
    for m in BAD:
        events = by_session[f"bad_{m}"]
        errors = [e for e in events if isinstance(e.payload, ev.NodeError)]
        assert len(errors) == 1 and errors[0].node_id == f"bad_{m}", errors
        assert EXPECTED[m] in errors[0].payload.message, errors[0].payload.message  # type: ignore[attr-defined]
        assert sum(isinstance(e.payload, ev.TurnAbort) for e in events) == 1
        # Within budget + margin: the error is logged soon after the turn went active.
        active = next(e for e in events if e.event_type is ev.EventType.TURN_ACTIVE)
        assert (errors[0].ts - active.ts).total_seconds() < BUDGET_MS / 1000 + MARGIN_S
    for n in range(3):
        events = by_session[f"good{n}"]
        assert sum(isinstance(e.payload, ev.TurnCommit) for e in events) == len(BAD) + 1
        assert not any(isinstance(e.payload, ev.NodeError | ev.TurnAbort) for e in events)


def test_a_tampered_extension_is_refused_and_the_processor_keeps_going(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    # The files no longer hash to the pin (the registry unit test modifies real files).
    stale = bad_manifest("echo", digest="sha256:" + "0" * 64)
    bundle = _bundle(("echo",), (stale,))
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=1))
    extensions = ExtensionRegistry([("bad_echo.yaml", stale)])
    registry = extensions.node_registry(bundle=bundle)
    config = ProcessorConfig(bootstrap=kafka_bootstrap, prefix=prefix, bundle=bundle,
                             drain_grace_s=10, store=tmp_path / "store", registry=registry)
    with ProcessorThread(config) as running:
        client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
        session = client.open_session("tampered")
        client.flush()
        _wait_for(lambda: running.processor.stats.sessions_admitted >= 1, 30, "session admitted")
        for text in ("what time is it", "play some music"):
            session.send_transcript(text)
            client.flush()
        _wait_for(lambda: running.processor.stats.turns_aborted >= 2, 30, "both turns")
        session.close()
        client.flush()
        _wait_for(lambda: running.processor.stats.events_in >= 4, 30, "the close applied")
    rows = read_log(kafka_bootstrap, prefix, partitions=1)
    assert check_log(rows, store=tmp_path / "store") == []
    errors = [r.event.payload for r in rows if isinstance(r.event.payload, ev.NodeError)]
    assert len(errors) == 2
    for error in errors:
        assert error.message.startswith("ExtensionRefusedError: extension bad_echo 1.0.0 (bad_echo.yaml): ")
        assert "but the manifest pins sha256:000" in error.message and "refusing to load" in error.message
    assert any(r.event.event_type is ev.EventType.SESSION_CLOSE for r in rows)
