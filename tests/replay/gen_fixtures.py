"""Generate the golden replay fixtures: one clean log, one mutated log per divergence class.

    .venv/bin/python -m tests.replay.gen_fixtures          # rewrite tests/replay/fixtures/

:func:`clean_log` is the only step that produces a recording. Today it drives
:class:`replay.testing.LogRecorder` (real plans, real deterministic node
outputs); when ``rspp run`` lands, replace its body with a real-runtime
recording read back through ``replay.KafkaLogSource`` — the mutations and the
expected reports are written on top of whatever it returns.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from pipelines.bundles import read_bundle, write_bundle
from pipelines.canonical import canonical_json, digest_of
from pipelines.shipped import PIPELINES_DIR
from replay.api import replay
from replay.sources import ContainerLogSource
from replay.testing import LogRecorder, write_log
from streams.abi.events import (
    Correlation,
    Envelope,
    EventType,
    NodeOutput,
    OutputAccepted,
    TurnOpen,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PREFIX = "golden"
TENANT = "acme"
SHIPPED_BUNDLE = PIPELINES_DIR / "bundles" / "voice_assistant_bundle_v1.json"
# Fixtures carry their bundle, as exports do: bundles are immutable by digest, and the
# shipped file is rebuilt whenever an artifact changes.
BUNDLE = FIXTURES / "bundles" / "voice_assistant-1.0.0.json"
Log = list[Envelope]


def clean_log() -> Log:
    """A recording that satisfies every rule: 4 turns (commit, cancel, failover, commit)."""
    rec = LogRecorder(prefix=PREFIX, tenant=TENANT, bundle=read_bundle(BUNDLE))
    rec.grant(1, "proc-a")
    rec.open_session("s1")
    t1 = rec.open_turn("s1", "t1", trigger="final_transcript")
    heard = rec.text_input("s1", t1, "Um, turn on the kitchen lights!")
    out = rec.outputs("s1", t1, heard)
    rec.accept("s1", t1, out["tts"][0], playback=True)
    rec.accept("s1", t1, out["tts"][1])
    rec.commit("s1", t1, outputs=2)
    t2 = rec.open_turn("s1", "t2", trigger="final_transcript")
    heard = rec.text_input("s1", t2, "What time is it?")
    out = rec.outputs("s1", t2, heard)
    rec.accept("s1", t2, out["tts"][0], playback=True)
    cancel = rec.cancel("s1", t2)
    rec.abort("s1", t2, "cancelled: barge-in", cause=cancel)
    rec.close_session("s1")
    rec.open_session("s2", admit=False)
    rec.open_session("s3")
    t3 = rec.open_turn("s3", "t3", trigger="end_of_utterance")
    eou = rec.audio_input("s3", t3, chunks=2)
    rec.outputs("s3", t3, eou, stt=[("play some", False), ("play some music", True)], tts_chunks=1)
    rec.grant(2, "proc-b")  # proc-a lost the partition mid-turn
    rec.abort("s3", t3, "failover")
    t4 = rec.open_turn("s3", "t4", trigger="final_transcript")
    heard = rec.text_input("s3", t4, "uh set a timer for five minutes")
    out = rec.outputs("s3", t4, heard, tts_chunks=1)
    rec.accept("s3", t4, out["tts"][0], playback=True)
    rec.commit("s3", t4, outputs=1)
    rec.close_session("s3")
    return rec.events


# -- mutations: each introduces exactly one divergence class -----------------------------------

def _find(log: Log, turn: str, et: EventType, node: str | None = None, nth: int = 0) -> int:
    hits = [i for i, e in enumerate(log) if e.turn_id == turn and e.event_type is et
            and (node is None or e.node_id == node)]
    return hits[nth]


def _resequence(log: Log) -> Log:
    """Renumber per-session seq so a mutation does not also read as a seq gap."""
    seqs: dict[str, int] = {}
    out = []
    for env in log:
        n = seqs.get(env.session_id, 0)
        seqs[env.session_id] = n + 1
        out.append(dataclasses.replace(env, seq=n))
    return out


def plan_hash_drift(log: Log) -> Log:
    """t1's frozen plan was edited (a node config) and re-hashed: self-consistent, not derivable."""
    i = _find(log, "t1", EventType.TURN_OPEN)
    doc = orjson.loads(log[i].payload.plan_json)  # type: ignore[attr-defined]
    doc["nodes"][1]["config"]["value"]["lowercase"] = False
    doc.pop("plan_hash")
    new_hash = digest_of(doc)
    doc["plan_hash"] = new_hash
    payload = TurnOpen(plan_hash=new_hash, plan_json=canonical_json(doc).decode())
    return [dataclasses.replace(e, payload=payload, plan_hash=new_hash) if j == i
            else dataclasses.replace(e, plan_hash=new_hash) if e.turn_id == "t1" else e
            for j, e in enumerate(log)]


def lifecycle_out_of_order(log: Log) -> Log:
    """t1's TURN_ACTIVE recorded before its TURN_OPEN."""
    i = _find(log, "t1", EventType.TURN_OPEN)
    active = dataclasses.replace(log[i + 1], correlation=dataclasses.replace(
        log[i + 1].correlation, causation_id=None))
    return _resequence([*log[:i], active, log[i], *log[i + 2:]])


def missing_l0_field(log: Log) -> Log:
    """t2's TURN_OPEN lost its bundle_id (an L0 baseline field)."""
    i = _find(log, "t2", EventType.TURN_OPEN)
    return [dataclasses.replace(e, bundle_id=None) if j == i else e for j, e in enumerate(log)]


def stale_epoch(log: Log) -> Log:
    """proc-a (epoch 1) still wrote t3's TURN_ABORT after proc-b was granted epoch 2."""
    i = _find(log, "t3", EventType.TURN_ABORT)
    return [dataclasses.replace(e, lease_epoch=1) if j == i else e for j, e in enumerate(log)]


def post_cancel_output(log: Log) -> Log:
    """t2's second TTS chunk was accepted for playback after the CANCEL of t2."""
    chunk = log[_find(log, "t2", EventType.NODE_OUTPUT, node="tts", nth=1)]
    cancel = _find(log, "t2", EventType.CANCEL)
    late = dataclasses.replace(
        chunk, event_id="00000000-0000-4000-8000-00000000c0de",
        event_type=EventType.OUTPUT_ACCEPTED, payload=OutputAccepted(output_event_id=chunk.event_id),
        correlation=Correlation(correlation_id=chunk.correlation.correlation_id,
                                causation_id=chunk.event_id))
    return _resequence([*log[: cancel + 1], late, *log[cancel + 1:]])


def output_drift(log: Log) -> Log:
    """t1's recorded reply differs from what respond.rules produces for the recorded input."""
    i = _find(log, "t1", EventType.NODE_OUTPUT, node="respond")
    old = log[i].payload
    assert isinstance(old, NodeOutput)
    new = dataclasses.replace(old, text="Turning off the kitchen lights.")
    return [dataclasses.replace(e, payload=new) if j == i else e for j, e in enumerate(log)]


def broken_correlation(log: Log) -> Log:
    """t4's PLAYBACK_STARTED names a causation that is not in the log."""
    i = _find(log, "t4", EventType.PLAYBACK_STARTED)
    corr = dataclasses.replace(log[i].correlation, causation_id="ffffffff-dead-4bad-beef-000000000000")
    return [dataclasses.replace(e, correlation=corr) if j == i else e for j, e in enumerate(log)]


# name -> (mutation, replay in re-simulate mode)
CASES: dict[str, tuple[Callable[[Log], Log] | None, bool]] = {
    "clean": (None, False),
    "clean_resimulate": (None, True),
    "plan_hash_drift": (plan_hash_drift, False),
    "lifecycle_out_of_order": (lifecycle_out_of_order, False),
    "missing_l0_field": (missing_l0_field, False),
    "stale_epoch": (stale_epoch, False),
    "post_cancel_output": (post_cancel_output, False),
    "output_drift": (output_drift, True),
    "broken_correlation": (broken_correlation, False),
}


def log_file(name: str) -> Path:
    return FIXTURES / f"{'clean' if name.startswith('clean') else name}.avro"


def expected_report(name: str) -> dict[str, object]:
    resimulate = CASES[name][1]
    result = replay(ContainerLogSource(log_file(name), allow_unverified=True), resimulate=resimulate)
    report = result.to_dict(timing=False)
    report["summary"]["source"] = log_file(name).name  # type: ignore[index]
    return report


def main() -> int:
    BUNDLE.parent.mkdir(parents=True, exist_ok=True)
    write_bundle(read_bundle(SHIPPED_BUNDLE), BUNDLE)
    base = clean_log()
    for name, (mutate, _) in CASES.items():
        if mutate is not None or name == "clean":
            write_log(mutate(base) if mutate else base, log_file(name), prefix=PREFIX)
    for name in CASES:
        report = expected_report(name)
        path = FIXTURES / f"{name}.expected.json"
        path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"{path.name}: {report['summary']['divergences']} divergences",  # type: ignore[index]
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
