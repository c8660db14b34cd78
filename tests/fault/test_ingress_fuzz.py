"""One record from any producer never stops the processor and is never lost.

A hypothesis run mutates valid envelopes field by field (empty and huge ids, timestamps
before 1970 and far ahead, seq and epochs at both ends of a long, NaN and infinite
numbers, unknown codecs, processor-only event types, the wrong lane), and adds truncated
and garbage frames, unknown schema ids and records at the lanes' size limit. Each example
is interleaved with a good caller on the same partitions, which must be served. At the
end every record sent has exactly one outcome (applied, hence in the log, or
dead-lettered with a reason and its original bytes), the log checks clean and replays
clean. ``make fuzz`` runs the same for longer (``RSPP_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.bundles import read_bundle
from replay import KafkaLogSource, replay
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.abi.errors import CodecError
from streams.client import VoiceClient
from streams.runtime.processor import ProcessorConfig
from streams.runtime.sessions import SessionKey
from streams.testing import LoggedEvent, ProcessorThread, read_dlq, read_log
from streams.topics import INGRESS_MAX_RECORD_BYTES, Lane, TopicLayout, apply_topics
from tests.fault.harness import BUNDLE, wait_for
from tests.fault.test_malformed import Sender

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 2
EXAMPLES = int(os.environ.get("RSPP_FUZZ_EXAMPLES", "25"))
LONG = 2**63 - 1
FINAL = ev.TranscriptKind.FINAL


def _base(kind: str, session: str, seq: int) -> ev.Envelope:
    payloads: dict[str, ev.Payload] = {
        "open": ev.SessionOpen(transport="sdk", locale="en-US"),
        "text": ev.Transcript(kind=FINAL, text="what time is it", confidence=0.9),
        "audio": ev.AudioChunk(codec="pcm16", sample_rate=16000, channels=1, seq=0, audio=bytes(640)),
        "eou": ev.EndOfUtterance(last_chunk_seq=0, reason="vad"),
        "cancel": ev.Cancel(scope=ev.CancelScope.TURN, target="", reason="barge-in"),
        "telemetry": ev.Telemetry(name="rtt_ms", value=12.0),
        "close": ev.SessionClose(reason="hangup"),
    }
    return ev.Envelope.new(
        payloads[kind],
        tenant_id="acme",
        session_id=session,
        seq=seq,
        correlation=ev.Correlation(correlation_id=uuid.uuid4().hex),
    )


def _mutations() -> dict[str, Callable[[ev.Envelope], ev.Envelope]]:
    def env(**fields: object) -> Callable[[ev.Envelope], ev.Envelope]:
        return lambda e: replace(e, **fields)  # type: ignore[arg-type]

    def payload(kind: type[ev.Payload], **fields: object) -> Callable[[ev.Envelope], ev.Envelope]:
        def mutate(e: ev.Envelope) -> ev.Envelope:
            if not isinstance(e.payload, kind):
                return e
            return replace(e, payload=replace(e.payload, **fields))  # type: ignore[arg-type]

        return mutate

    def retype(p: ev.Payload) -> Callable[[ev.Envelope], ev.Envelope]:
        return lambda e: replace(e, payload=p, event_type=p.EVENT_TYPE)

    big = "x" * 300
    return {
        "none": lambda e: e,
        "empty tenant": env(tenant_id=""),
        "huge tenant": env(tenant_id=big),
        "empty session": env(session_id=""),
        "huge session": env(session_id=big),
        "empty correlation": env(correlation=ev.Correlation(correlation_id="")),
        "huge correlation": env(correlation=ev.Correlation(correlation_id=big)),
        "empty event id": env(event_id=""),
        "ts 1969": env(ts=datetime(1969, 7, 20, 20, 17, tzinfo=UTC)),
        "ts year 1": env(ts=datetime(1, 1, 1, tzinfo=UTC)),
        "ts year 9999": env(ts=datetime(9999, 12, 31, tzinfo=UTC)),
        "seq max": env(seq=LONG),
        "seq min": env(seq=-LONG - 1),
        "seq negative": env(seq=-1),
        "epoch max": env(lease_epoch=LONG),
        "epoch negative": env(lease_epoch=-1),
        "epoch ahead": env(lease_epoch=7),
        "nan confidence": payload(ev.Transcript, confidence=float("nan")),
        "inf confidence": payload(ev.Transcript, confidence=float("inf")),
        "huge text": payload(ev.Transcript, text="y" * 200_000),
        "nan telemetry": payload(ev.Telemetry, value=float("nan")),
        "opus": payload(ev.AudioChunk, codec="opus"),
        "stereo": payload(ev.AudioChunk, channels=2),
        "rate 0": payload(ev.AudioChunk, sample_rate=0),
        "odd audio": payload(ev.AudioChunk, audio=b"\x01"),
        "cancel node ghost": payload(ev.Cancel, scope=ev.CancelScope.NODE, target="\x00" * 40),
        "cancel unknown turn": payload(ev.Cancel, target="nope-t99"),
        "admit": retype(ev.Admit(reason="forged")),
        "turn open": retype(ev.TurnOpen(plan_hash="sha256:" + "0" * 64, plan_json="{}")),
        "node output": retype(ev.NodeOutput(output_seq=0, kind="text", text="pwned", final=True)),
        "lease": retype(ev.LeaseGranted(partition=0, epoch=LONG, holder="forger")),
        "lane lie": env(lane=ev.Lane.TELEMETRY),
    }


MUTATIONS = _mutations()
KINDS = ["open", "text", "audio", "eou", "cancel", "telemetry", "close"]
RAW = {
    "truncated": lambda f: f[: max(1, len(f) // 2)],
    "garbage": lambda f: b"\x00" + os.urandom(40),
    "unknown schema": lambda f: b"\x00\x7f\xff\xff\xfe" + f[5:],
    "wrong magic": lambda f: b"\x01" + f[1:],
    "trailing bytes": lambda f: f + b"\x00\x00",
    "at the size limit": lambda f: b"\x00" * (INGRESS_MAX_RECORD_BYTES - 700),
}


class Fuzzer:
    """Sends hostile records and good callers; remembers what every record should become."""

    def __init__(self, bootstrap: str, layout: TopicLayout) -> None:
        self.sender = Sender(bootstrap, layout)
        self.client = VoiceClient(bootstrap=bootstrap, prefix=layout.prefix, tenant_id="acme")
        self.codec = EventCodec()
        self.good: list[str] = []
        self.tried: Counter[str] = Counter()
        self.bad_sessions = 0

    def hostile(self, steps: list[tuple[str, str, str | None, bool]]) -> None:
        self.bad_sessions += 1
        session = f"bad-{self.bad_sessions}"
        for seq, (kind, mutation, raw, to_wrong_topic) in enumerate(steps):
            event = MUTATIONS[mutation](_base(kind, session, seq))
            frame = self.codec.encode(event)
            if raw is not None:
                frame = RAW[raw](frame)
            lane = Lane(event.lane.value)
            if to_wrong_topic:
                lane = Lane.DATA if lane is not Lane.DATA else Lane.CONTROL
            self.sender.raw(lane, frame, list(self.codec.headers(event)), session.encode())
            self.tried[raw or mutation] += 1

    def good_call(self) -> str:
        """A caller who opens a call and says one thing (left open: a hang-up right after
        could abort the reply, which is not what this test is about)."""
        name = f"good-{len(self.good)}"
        call = self.client.open_session(name)
        call.send_transcript("play some music")
        self.good.append(name)
        return name

    def flush(self) -> None:
        self.sender.flush()
        self.client.flush()

    @property
    def records(self) -> int:
        return len(self.sender.landed) + 2 * len(self.good)


_step = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from(sorted(MUTATIONS)),
    st.one_of(st.none(), st.none(), st.none(), st.sampled_from(sorted(RAW))),
    st.sampled_from([False, False, False, True]),  # sent to another lane's topic
)


def test_one_record_never_stops_the_processor_and_none_is_lost(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    prefix = unique_prefix()
    layout = TopicLayout(prefix=prefix, partitions=PARTITIONS)
    apply_topics(kafka_bootstrap, layout)
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=read_bundle(BUNDLE), drain_grace_s=5
    )
    fuzzer = Fuzzer(kafka_bootstrap, layout)
    with ProcessorThread(config) as running:
        proc = running.processor

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(steps=st.lists(_step, min_size=1, max_size=6))
        def example(steps: list[tuple[str, str, str | None, bool]]) -> None:
            fuzzer.hostile(steps)
            served = SessionKey("acme", fuzzer.good_call())
            fuzzer.flush()
            wait_for(
                lambda: running.error is not None or proc.records_handled >= fuzzer.records,
                60,
                "the processor to handle every record sent",
            )
            assert running.error is None, f"the processor stopped: {running.error!r}"

            def turn_done() -> bool:
                session = proc.engine.sessions.get(served)
                return running.error is not None or (session is not None and session.turns_done > 0)

            wait_for(turn_done, 60, f"good caller {served.session}'s turn")
            assert running.error is None, f"the processor stopped: {running.error!r}"

        example()
    print(f"\nfuzz: {sum(fuzzer.tried.values())} hostile records tried, {len(fuzzer.good)} good calls")
    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    committed = {r.event.session_id for r in rows if r.event.event_type is ev.EventType.TURN_COMMIT}
    assert set(fuzzer.good) <= committed, sorted(set(fuzzer.good) - committed)
    _assert_every_record_has_one_outcome(kafka_bootstrap, prefix, fuzzer, rows)
    result = replay(KafkaLogSource(kafka_bootstrap, prefix, idle_timeout_s=5.0))
    assert result.ok, "\n".join(str(d) for d in result.divergences[:20])


def _assert_every_record_has_one_outcome(
    bootstrap: str, prefix: str, fuzzer: Fuzzer, rows: list[LoggedEvent]
) -> None:
    dlq = read_dlq(bootstrap, prefix, partitions=PARTITIONS)
    assert check_log(rows) == []
    logged = Counter(r.event.event_id for r in rows if r.event.event_id)
    by_position: Counter[tuple[str, int, int]] = Counter()
    by_id: Counter[str] = Counter()
    reasons: list[str] = []
    for r in dlq:
        p = r.event.payload
        assert isinstance(p, ev.DeadLetter) and p.reason, r
        reasons.append(p.reason)
        assert "internal error" not in p.reason, p.reason  # the gate must catch it first
        if p.original_offset >= 0:
            by_position[p.original_topic, p.original_partition, p.original_offset] += 1
        elif p.original_bytes:  # held, then dead-lettered: re-encoded, offset committed
            by_id[fuzzer.codec.decode(p.original_bytes).event_id] += 1
    assert all(n == 1 for n in by_position.values()), "a record was dead-lettered twice"
    from streams.runtime.changelog import read_to_end

    outcomes: Counter[str] = Counter()
    for topic in sorted({t for t, _, _ in fuzzer.sender.landed}):
        for msg in read_to_end(bootstrap, topic, range(PARTITIONS)):
            where = (topic, msg.partition(), msg.offset())
            if where not in set(fuzzer.sender.landed):
                continue
            dead = by_position[where] + _by_id(fuzzer.codec, msg.value(), by_id)
            applied = _by_id(fuzzer.codec, msg.value(), logged)
            assert dead + applied == 1, f"{where}: dead-lettered {dead}x, logged {applied}x"
            outcomes["dead-lettered" if dead else "applied"] += 1
    assert sum(outcomes.values()) == len(fuzzer.sender.landed)
    assert outcomes["dead-lettered"] > 0 and outcomes["applied"] > 0, outcomes


def _by_id(codec: EventCodec, value: bytes | None, counts: Counter[str]) -> int:
    try:
        event_id = codec.decode(value or b"").event_id
    except CodecError:
        return 0
    return counts[event_id] if event_id else 0


def test_the_reproductions_are_dead_lettered_and_the_next_caller_is_served(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    """Issue reproductions: an empty correlation id and a ts in 1969 each stopped `rspp run`
    while the plan was frozen (and the record was lost); an ADMIT or a TELEMETRY for an
    unknown session admitted it; a seq of 2**63-1 shut the session's data lane for good."""
    prefix = unique_prefix()
    layout = TopicLayout(prefix=prefix, partitions=PARTITIONS)
    apply_topics(kafka_bootstrap, layout)
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=read_bundle(BUNDLE), drain_grace_s=5
    )
    client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
    hi = ev.Transcript(kind=FINAL, text="hi", confidence=1.0)

    def send(payload: ev.Payload, session: str, seq: int, **fields: object) -> ev.Envelope:
        event = ev.Envelope.new(payload, tenant_id="acme", session_id=session, seq=seq)
        event = replace(event, **fields)  # type: ignore[arg-type]
        client.publish(event)
        return event

    with ProcessorThread(config) as running:
        evil = client.open_session("evil")
        bad = [
            send(hi, "evil", 1, correlation=ev.Correlation(correlation_id="")),
            send(hi, "evil", 2, ts=datetime(1969, 12, 31, tzinfo=UTC)),
            send(ev.Admit(reason="forged"), "ghost-1", 0),
            send(ev.Telemetry(name="x", value=1.0), "ghost-2", 0),
            send(hi, "evil", LONG),
        ]
        evil.publish(ev.Transcript(kind=FINAL, text="what time is it", confidence=1.0))
        nxt = client.open_session("next")
        nxt.send_transcript("play some music")
        client.flush()
        wait_for(
            lambda: running.error is not None or running.processor.stats.turns_committed >= 2,
            60,
            "both callers' turns",
        )
        assert running.error is None
    dlq = read_dlq(kafka_bootstrap, prefix, partitions=PARTITIONS)
    codec = EventCodec()
    letters = {
        codec.decode(p.original_bytes).event_id: p.reason
        for p in (r.event.payload for r in dlq)
        if isinstance(p, ev.DeadLetter) and p.original_bytes
    }
    assert set(letters) == {e.event_id for e in bad}
    assert "correlation_id is empty" in letters[bad[0].event_id]
    assert "before 1970" in letters[bad[1].event_id]
    assert "ADMIT may not be sent" in letters[bad[2].event_id]
    assert "TELEMETRY for unknown session" in letters[bad[3].event_id]
    assert "jumps more than" in letters[bad[4].event_id]
    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    assert check_log(rows) == []
    sessions = {r.event.session_id for r in rows}
    assert "ghost-1" not in sessions and "ghost-2" not in sessions
    committed = {r.event.session_id for r in rows if r.event.event_type is ev.EventType.TURN_COMMIT}
    assert committed == {"evil", "next"}  # evil's data lane still takes seq after the bad ones
