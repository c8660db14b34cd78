"""`make soak`: the long kill campaign, then the oracle, then a summary (text + JSON).

    python -m tests.fault.soak [--kills 200] [--seed 7] [--json-out soak.json]

Runs against ``RSPP_BOOTSTRAP`` or the shared local broker (127.0.0.1:9092). Two
processors under text traffic are SIGKILLed ``--kills`` times at random points
and restarted; afterwards every sent event must be in the log or the DLQ, none
twice, the log sound under ``check_log`` and clean under replay.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from streams.abi import events as ev
from streams.config import external_bootstrap
from streams.testing import LoggedEvent, read_log
from tests.fault.harness import verify
from tests.fault.test_kills import PARTITIONS, kill_campaign


def control_latencies_ms(rows: list[LoggedEvent]) -> list[float]:
    """Each CANCEL: sent (voice service clock) → appended to the log by the processor that
    acted on it (the record's Kafka timestamp), same host. A cancel that aborts a turn logs
    its TURN_ABORT in the same step; one that finds no open turn is measured all the same."""
    return sorted(
        r.logged_ms - r.event.ts.timestamp() * 1000.0
        for r in rows
        if r.event.event_type is ev.EventType.CANCEL and r.logged_ms > 0
    )


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank below), as every fault report uses."""
    return values[min(len(values) - 1, int(len(values) * q))]


def first_output_latencies_ms(
    rows: list[LoggedEvent], *, sent_from: float = 0.0, sent_until: float = float("inf")
) -> list[float]:
    """Each turn that produced output and whose triggering input was sent within
    [``sent_from``, ``sent_until``) (epoch seconds, voice service clock): sent → its first
    OUTPUT_ACCEPTED appended to the log. The MVP turn-latency gate (NF-024) measures the
    same span for audio (end of utterance → first audio)."""
    sent: dict[str, float] = {}
    first: dict[str, float] = {}
    for r in rows:
        turn = r.event.turn_id
        if turn is None or r.logged_ms <= 0:
            continue
        if r.event.event_type in (ev.EventType.TRANSCRIPT, ev.EventType.END_OF_UTTERANCE):
            sent.setdefault(turn, r.event.ts.timestamp() * 1000.0)
        elif r.event.event_type is ev.EventType.OUTPUT_ACCEPTED:
            first.setdefault(turn, r.logged_ms)
    window = (sent_from * 1000.0, sent_until * 1000.0)
    return sorted(
        first[t] - sent[t] for t in first if t in sent and window[0] <= sent[t] < window[1]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault.soak")
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    bootstrap = external_bootstrap() or "127.0.0.1:9092"
    prefix = f"soak-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rspp-soak-") as tmp:
        traffic, procs, kills = kill_campaign(
            bootstrap=bootstrap, prefix=prefix, workdir=Path(tmp), kills=args.kills, seed=args.seed
        )
    acc = verify(bootstrap, prefix, partitions=PARTITIONS, sent=traffic.sent, settle_s=120)
    rows = read_log(bootstrap, prefix, partitions=PARTITIONS)
    lat = control_latencies_ms(rows)
    p50 = percentile(lat, 0.5) if lat else None
    p99 = percentile(lat, 0.99) if lat else None
    summary = {
        "prefix": prefix,
        "seconds": round(time.monotonic() - started, 1),
        "kills_survived": kills,
        "events_checked": acc.log_events,
        "ingress_sent": acc.sent,
        "lost": len(acc.lost),
        "duplicated": len(acc.duplicated),
        "dlq_by_reason": dict(acc.dlq_reasons),
        "shed": acc.shed,
        "max_rss_mb": round(max(p.max_rss_kb for p in procs) / 1024, 1),
        "control_cancels": len(lat),
        "control_p50_ms": round(p50, 1) if p50 is not None else None,
        "control_p99_ms": round(p99, 1) if p99 is not None else None,
        # A cancel sent while its partition's processor lies killed waits for the failover
        # (restart + the dead writer's transaction timeout): the tail measures recovery, not
        # the control lane. Live control latency under load is the flood test's figure.
        "control_note": "cancel sent -> acted on (logged), incl. failover gaps after kills",
        "replay": "clean",
    }
    for key, value in summary.items():
        print(f"{key:>18}: {value}")
    print(json.dumps(summary, sort_keys=True))
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
