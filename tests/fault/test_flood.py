"""A data flood on two sessions does not starve control or the other sessions.

One ``rspp run`` subprocess (the low-latency profile of the voice-assistant
bundle: bounded lane queues, ``drop_oldest`` shedding) serves four ordinary
sessions doing turns with barge-in cancels while two other sessions push
transcripts as fast as the producer can — far beyond real time — in two bursts,
the second twice the first. Afterwards:

- control latency (CANCEL sent → the processor appends it to the log, aborting the turn
  if one is open) stays within goal: median under the 50 ms MVP gate, p99 bounded;
- every ordinary session still got turns committed during the flood, within its budgets:
  no turn timed out or was deferred, and trigger → first accepted output stays under the
  MVP turn-latency gate (1500 ms p95);
- the overload is shed deterministically and logged, never silent, and only on
  the flooded sessions: final transcripts that arrive while a session's turn
  responds are held in a bounded buffer, and past its limit the oldest are
  dropped under the bundle's ``low_latency/drop_oldest`` rule, each drop counted
  by a SHED event (rule + defaulting source) in the transaction that commits the
  dropped record's offset. The oracle counts the log, the DLQ and the SHED counts
  against what was sent: nothing lost silently, nothing twice. (Same order in,
  same shed set out is the property test in tests/runtime/test_held_shedding.py.)
- the processor's RSS peak stays under a fixed bound and does not grow with the
  burst size.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.abi import events as ev
from streams.client import VoiceSession
from streams.testing import read_dlq, read_log
from streams.topics import TopicLayout, apply_topics
from tests.fault.harness import (
    ProcessorProc,
    Traffic,
    group_lag,
    processors,
    verify,
    wait_for,
)
from tests.fault.soak import control_latencies_ms, first_output_latencies_ms, percentile

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 2
BURST = 3000  # transcripts per flooded session in the first burst (the second is 2x)
# 2 shared cores run the broker, the processor, the floods and this test: the median must
# meet the MVP gate, the tail gets slack for the box (it is printed, and measured in bench/).
MVP_CONTROL_MS = 50.0
CONTROL_P99_BOUND_MS = 500.0
ORDINARY = 4
ORDINARY_RATE = 25.0  # records/s over the ordinary sessions
PACED_S = 8.0  # the 10x phase
TURN_LATENCY_GATE_MS = 1500.0  # mvp_gates_manifest_v1.yaml turn_latency_p95
RSS_BOUND_KB = 400 * 1024
RSS_GROWTH_KB = 40 * 1024
# Ordinary traffic (25 records/s) keeps arriving while we check: a handful of its
# newest records may be fetched but not yet committed. The floods are thousands.
CAUGHT_UP_LAG = 20


def _flood(traffic: Traffic, sessions: list[VoiceSession], frames: int) -> None:
    for i in range(frames):
        for s in sessions:
            traffic.sent[s.send_transcript(f"flood {i}").event_id] = s.session_id
    assert traffic.client.flush(30) == 0


def _paced_flood(
    traffic: Traffic, sessions: list[VoiceSession], per_session_rate: float, seconds: float
) -> None:
    interval = 1.0 / per_session_rate
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        for s in sessions:
            traffic.sent[s.send_transcript(f"paced {i}").event_id] = s.session_id
        i += 1
        time.sleep(max(0.0, start + i * interval - time.monotonic()))
    assert traffic.client.flush(30) == 0


def _sampler(proc: ProcessorProc, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        while not stop.is_set():
            proc.sample_rss()
            stop.wait(0.05)

    t = threading.Thread(target=loop, name="rss", daemon=True)
    t.start()
    return t


def test_flood_on_two_sessions_keeps_control_fast_and_memory_flat(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=PARTITIONS))
    proc = ProcessorProc(
        bootstrap=kafka_bootstrap,
        prefix=prefix,
        holder="flooded",
        workdir=tmp_path,
        partitions=PARTITIONS,
    )
    normal = Traffic(
        bootstrap=kafka_bootstrap, prefix=prefix, sessions=ORDINARY, seed=9, cancel_ratio=0.3
    )
    flooder = Traffic(bootstrap=kafka_bootstrap, prefix=prefix + "-f", sessions=0, seed=1)
    flooder.client = normal.client.__class__(
        bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme"
    )
    stop_sampling = threading.Event()
    with processors([proc]):
        proc.start()
        sampler = _sampler(proc, stop_sampling)
        try:
            floods = [flooder.open(), flooder.open()]
            normal.run_in_background(ORDINARY_RATE, rotate_every=0)
            wait_for(
                lambda: _commits(kafka_bootstrap, prefix, set()) >= 4, 45, "turns before the flood"
            )
            flood_started = time.time()
            _paced_flood(flooder, floods, 10 * ORDINARY_RATE / ORDINARY, PACED_S)
            paced_ended = time.time()
            _flood(flooder, floods, BURST)
            _wait_handled(kafka_bootstrap, prefix, "burst 1")
            peak_first = proc.max_rss_kb
            _flood(flooder, floods, 2 * BURST)
            _wait_handled(kafka_bootstrap, prefix, "burst 2")
            peak_second = proc.max_rss_kb
            normal.stop()
            for s in floods:
                flooder.sent[s.close().event_id] = s.session_id
            assert flooder.client.flush(30) == 0
            sent = {**normal.sent, **flooder.sent}
            acc = verify(kafka_bootstrap, prefix, partitions=PARTITIONS, sent=sent, settle_s=60)
            assert proc.alive, proc.stderr()[-3000:]
            assert proc.stop() == 0, proc.stderr()[-3000:]
        finally:
            stop_sampling.set()
            sampler.join(5)
    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    flooded = {s.session_id for s in floods}
    during = [
        r
        for r in rows
        if r.event.session_id not in flooded and r.event.ts.timestamp() >= flood_started
    ]
    lat = control_latencies_ms(during)  # the cancels sent while the floods ran
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    paced = first_output_latencies_ms(during, sent_until=paced_ended)
    bursts = first_output_latencies_ms(during, sent_from=paced_ended)
    sheds = [r for r in rows if isinstance(r.event.payload, ev.Shed)]
    print(
        f"\nflood: {acc.sent} sent, {acc.shed} shed in {len(sheds)} SHED events; "
        f"control (cancel sent -> acted on) p50 {p50:.0f} ms p99 {p99:.0f} ms over {len(lat)} cancels "
        f"(MVP gate {MVP_CONTROL_MS:.0f} ms on the median, p99 bound {CONTROL_P99_BOUND_MS:.0f} ms); "
        f"RSS peak {peak_first // 1024} MiB after burst 1, {peak_second // 1024} MiB after burst 2; "
        f"ordinary turns' trigger -> first output: p50 {percentile(paced, 0.5):.0f} / p95 "
        f"{percentile(paced, 0.95):.0f} ms at 10x ({len(paced)} turns), p50 {percentile(bursts, 0.5):.0f} / p95 "
        f"{percentile(bursts, 0.95):.0f} ms in the bursts ({len(bursts)} turns)"
    )
    assert len(lat) >= 20, f"only {len(lat)} cancels measured"
    assert p50 <= MVP_CONTROL_MS, f"control p50 {p50:.0f} ms under flood"
    assert p99 <= CONTROL_P99_BOUND_MS, f"control p99 {p99:.0f} ms under flood"
    served = {r.event.session_id for r in during if r.event.event_type is ev.EventType.TURN_COMMIT}
    normal_sessions = set(normal.sent.values())
    assert normal_sessions <= served, f"starved: {sorted(normal_sessions - served)}"
    assert len(paced) >= 20, f"only {len(paced)} ordinary turns during the 10x flood"
    assert percentile(paced, 0.95) <= TURN_LATENCY_GATE_MS, f"ordinary turns at 10x: p95 {percentile(paced, 0.95)}"
    over_budget = [
        r
        for r in during
        if isinstance(r.event.payload, ev.Defer)
        or (isinstance(r.event.payload, ev.TurnAbort) and r.event.payload.reason == "turn timeout")
    ]
    assert over_budget == [], f"ordinary sessions over budget: {over_budget[:3]}"
    overload = [
        r
        for r in read_dlq(kafka_bootstrap, prefix, partitions=PARTITIONS)
        if isinstance(r.event.payload, ev.DeadLetter)
        and r.event.payload.reason.startswith("next utterance buffer full")
    ]
    print(f"flood: DLQ reasons {dict(acc.dlq_reasons)}")
    assert sheds, "the flood shed nothing: no overload?"
    assert overload == [], "a shedding bundle refused held utterances instead of shedding"
    assert acc.shed >= BURST, f"only {acc.shed} shed for {3 * BURST} flood transcripts per session"
    assert {r.event.session_id for r in sheds} <= flooded, "an ordinary session was shed"
    assert all(
        isinstance(r.event.payload, ev.Shed)
        and r.event.payload.rule == "low_latency/drop_oldest"
        and r.event.payload.defaulting_source == "profile"
        and r.event.payload.lane is ev.Lane.DATA
        for r in sheds
    )
    assert peak_second <= RSS_BOUND_KB, f"RSS peak {peak_second // 1024} MiB"
    assert peak_second - peak_first <= RSS_GROWTH_KB, (
        f"RSS grew {peak_first // 1024} -> {peak_second // 1024} MiB with a 2x burst"
    )


def _commits(bootstrap: str, prefix: str, exclude: set[str]) -> int:
    try:
        rows = read_log(bootstrap, prefix, partitions=PARTITIONS)
    except Exception:
        return 0
    return sum(
        1
        for r in rows
        if r.event.event_type is ev.EventType.TURN_COMMIT and r.event.session_id not in exclude
    )


def _wait_handled(bootstrap: str, prefix: str, what: str, timeout: float = 60.0) -> None:
    """Wait until the processor's committed data offsets reach the data topic's end.

    True by design once the processor has handled every flood record: each one was
    dispatched or shed (a SHED event), and the offsets commit in the same transaction
    as those events. The ordinary traffic keeps transactions going meanwhile; its own
    newest records may still be in flight, so "caught up" is lag within one poll batch
    of them. Which transcripts survive shedding is the scheduler's business, not this wait's.
    """
    topic = TopicLayout(prefix=prefix, partitions=PARTITIONS).data
    group = f"rspp-{prefix}"
    lags: list[int | None] = []

    def caught_up() -> bool:
        lags.append(group_lag(bootstrap, group, topic, PARTITIONS))
        return lags[-1] is not None and lags[-1] <= CAUGHT_UP_LAG

    try:
        wait_for(caught_up, timeout, f"the processor to handle {what}", every=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; data lag samples {lags[-10:]}") from None
