"""Malformed and hostile ingress: every record is processed or dead-lettered with a reason.

One processor (in-process) faces a corpus (``corpus/*.bin``: bad framing, unknown
schema ids, varint overflow, random bytes), hypothesis-generated garbage frames,
valid Avro of the wrong type, missing and forged headers, forged lease epochs,
a huge transcript, sessions that never close, cancels of unknown turns and
out-of-order sequence numbers. The processor must survive all of it, a good
session must still be served, and ingress = recorded in the log + dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.bundles import read_bundle
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.client import VoiceClient
from streams.runtime.processor import ProcessorConfig
from streams.testing import ProcessorThread, read_dlq, read_log
from streams.topics import INGRESS_MAX_RECORD_BYTES, Lane, TopicLayout, apply_topics
from tests.fault.harness import BUNDLE, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 2
CORPUS = Path(__file__).parent / "corpus"
Headers = list[tuple[str, str | bytes | None]]


class Sender:
    """Raw producer remembering where each record landed."""

    def __init__(self, bootstrap: str, layout: TopicLayout) -> None:
        self.layout = layout
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 1, "message.max.bytes": 2 << 20}
        )
        self.landed: list[tuple[str, int, int]] = []
        self.codec = EventCodec()

    def _done(self, err: object, msg: Message) -> None:
        assert err is None, err
        self.landed.append((str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)))

    def raw(self, lane: Lane, value: bytes, headers: Headers, key: bytes = b"k") -> None:
        topic = self.layout.lane_topic(lane)
        self.producer.produce(topic, value, key=key, headers=headers, on_delivery=self._done)
        self.producer.poll(0)

    def event(self, event: ev.Envelope, *, headers: Headers | None = None) -> None:
        value, routed = self.codec.encode_with_headers(event)
        lane = Lane(event.lane.value)
        self.raw(
            lane, value, headers if headers is not None else list(routed), event.session_id.encode()
        )

    def flush(self) -> None:
        assert self.producer.flush(15) == 0


def _env(payload: ev.Payload, session: str, seq: int, **kw: object) -> ev.Envelope:
    return ev.Envelope.new(payload, tenant_id="acme", session_id=session, seq=seq, **kw)  # type: ignore[arg-type]


def _hostile(sender: Sender) -> None:
    data: Headers = [("rspp_lane", b"data"), ("rspp_session", b"fuzz")]
    for path in sorted(CORPUS.glob("*.bin")):
        sender.raw(Lane.DATA, path.read_bytes(), data)
    sender.raw(Lane.DATA, b"no headers at all", [])
    sender.raw(
        Lane.DATA, b"\x00\x00\x00\x00\x01", [("rspp_lane", b"nonsense"), ("rspp_session", b"x")]
    )
    # Valid Avro, wrong type: a lease grant is not an ingress event.
    sender.event(_env(ev.LeaseGranted(partition=0, epoch=99, holder="forger"), "forged", 0))
    # Forged headers: the session header names another session; lane header lies. The body
    # is the truth, so both are applied as what their bodies say.
    sender.event(
        _env(ev.SessionOpen(transport="sdk", locale="en-US"), "real", 0),
        headers=[("rspp_lane", b"control"), ("rspp_session", b"someone-else")],
    )
    sender.event(
        _env(ev.Transcript(kind=ev.TranscriptKind.FINAL, text="hi", confidence=1.0), "liar", 0),
        headers=[("rspp_lane", b"control"), ("rspp_session", b"liar")],
    )
    # A session that never closes, a forged future epoch, a huge transcript, unknown-turn
    # cancels, out-of-order and duplicated sequence numbers.
    sender.event(_env(ev.SessionOpen(transport="sdk", locale="en-US"), "open-forever", 0))
    sender.event(
        _env(
            ev.Transcript(kind=ev.TranscriptKind.PARTIAL, text="x" * 400_000, confidence=1.0),
            "open-forever",
            5,
            lease_epoch=1_000_000,
        )
    )
    sender.event(
        _env(
            ev.Cancel(scope=ev.CancelScope.TURN, target="open-forever-t77", reason="x"),
            "open-forever",
            1,
        )
    )
    sender.event(
        _env(
            ev.Cancel(scope=ev.CancelScope.NODE, target="no-such-node", reason="x"),
            "open-forever",
            2,
        )
    )
    sender.event(
        _env(
            ev.Transcript(kind=ev.TranscriptKind.PARTIAL, text="late", confidence=1.0),
            "open-forever",
            3,
        )
    )
    sender.event(
        _env(
            ev.Transcript(kind=ev.TranscriptKind.PARTIAL, text="again", confidence=1.0),
            "open-forever",
            5,
        )
    )
    sender.event(  # behind "again": out of order
        _env(
            ev.Transcript(kind=ev.TranscriptKind.PARTIAL, text="behind", confidence=1.0),
            "open-forever",
            4,
        )
    )
    sender.event(_env(ev.Cancel(scope=ev.CancelScope.SESSION, target="", reason="x"), "ghost", 0))
    # At the lanes' record limit: garbage, whose dead letter carries all of it plus the
    # reason, and a valid final transcript (as large as a default producer sends), which the
    # log records whole. Neither derived record may be refused by the processor's producer.
    sender.raw(Lane.DATA, b"\xff" * (INGRESS_MAX_RECORD_BYTES - 600), data)
    sender.event(_env(ev.SessionOpen(transport="sdk", locale="en-US"), "big", 0))
    sender.event(
        _env(
            ev.Transcript(kind=ev.TranscriptKind.FINAL, text="y" * 998_000, confidence=1.0),
            "big",
            1,
        )
    )


def test_hostile_ingress_is_dead_lettered_and_the_processor_survives(
    kafka_bootstrap: str, unique_prefix: Callable[[], str]
) -> None:
    prefix = unique_prefix()
    layout = TopicLayout(prefix=prefix, partitions=PARTITIONS)
    apply_topics(kafka_bootstrap, layout)
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=read_bundle(BUNDLE), drain_grace_s=5
    )
    sender = Sender(kafka_bootstrap, layout)
    with ProcessorThread(config) as running:
        _hostile(sender)

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            value=st.one_of(
                st.binary(max_size=256),
                st.binary(max_size=64).map(lambda b: b"\x00\x00\x00\x00\x01" + b),
            ),
            lane=st.sampled_from([b"data", b"control", b"telemetry", b"bogus", b""]),
            session=st.binary(max_size=12),
        )
        def fuzz(value: bytes, lane: bytes, session: bytes) -> None:
            sender.raw(Lane.DATA, value, [("rspp_lane", lane), ("rspp_session", session)])

        fuzz()
        sender.flush()
        client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix)
        good = client.open_session("good")
        good.send_transcript("play some music")
        client.flush()
        wait_for(lambda: running.processor.stats.turns_committed >= 1, 30, "the good turn")
        expected = len(sender.landed)
        wait_for(
            lambda: running.processor.dlq_count + running.processor.stats.events_in >= expected,
            30,
            "every hostile record to be handled",
        )
        time.sleep(0)  # the processor thread is still alive here
        assert running.error is None
    assert running.error is None
    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    dlq = read_dlq(kafka_bootstrap, prefix, partitions=PARTITIONS)
    assert check_log(rows) == []
    dead = {
        (p.original_topic, p.original_partition, p.original_offset)
        for p in (r.event.payload for r in dlq)
        if isinstance(p, ev.DeadLetter)
    }
    assert all(isinstance(r.event.payload, ev.DeadLetter) and r.event.payload.reason for r in dlq)
    logged_ids = {r.event.event_id for r in rows}
    codec = EventCodec()
    unaccounted = []
    for topic, part, offset in sender.landed:
        if (topic, part, offset) in dead:
            continue
        unaccounted.append((topic, part, offset))
    # What is not dead-lettered must be recorded in the log (decodable, valid, applied).
    from streams.runtime.changelog import read_to_end

    for topic in {t for t, _, _ in unaccounted}:
        for msg in read_to_end(kafka_bootstrap, topic, range(PARTITIONS)):
            key = (topic, msg.partition(), msg.offset())
            if key in unaccounted:
                assert codec.decode(msg.value()).event_id in logged_ids, (
                    f"{key} neither logged nor DLQ'd"
                )
                unaccounted.remove(key)
    assert unaccounted == []
    reasons = [r.event.payload.reason for r in dlq if isinstance(r.event.payload, ev.DeadLetter)]
    for expected_reason in (
        "bad_framing",
        "unknown_schema",
        "LEASE_GRANTED may not be sent on the",
        "lease epoch 1000000 is ahead of partition",
        "unknown turn",
        "out-of-order seq",
    ):
        assert any(expected_reason in r for r in reasons), (expected_reason, sorted(set(reasons)))
