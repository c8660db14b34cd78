"""The close barrier: a SESSION_CLOSE waits for the data the service sent before it.

Control has strict priority, so a hang-up overtakes the caller's last words when
data is backed up. Before the barrier those words were dead-lettered as "session is
closed"; now they get their turn and the close follows them in the log. Pure rules
first (a fake clock), then the processor on a real broker, including a close held
across a processor restart (it travels in the session snapshot).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.bundles import read_bundle
from pipelines.models.resolved import PipelineBundle
from replay.logcheck import check_log
from streams.abi import events as ev
from streams.client import VoiceClient
from streams.runtime.closing import CloseBarrier, HeldClose, HeldCloses
from streams.runtime.processor import ProcessorConfig
from streams.runtime.sessions import SessionKey
from streams.testing import LoggedEvent, ProcessorThread, read_dlq, read_log
from streams.topics import TopicLayout, apply_topics

BARRIER = CloseBarrier(grace_ms=200, max_hold_ms=5_000)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


EPOCH = datetime(2026, 11, 26, tzinfo=UTC)


def _at(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def _close(session: str, ms: int) -> ev.Envelope:
    return ev.Envelope.new(
        ev.SessionClose(reason="hangup"), tenant_id="acme", session_id=session, seq=9, ts=_at(ms)
    )


def _data(ms: int) -> ev.Envelope:
    return ev.Envelope.new(
        ev.Transcript(kind=ev.TranscriptKind.FINAL, text="hi"),
        tenant_id="acme",
        session_id="other",
        seq=1,
        ts=_at(ms),
    )


def _closes(clock: FakeClock) -> HeldCloses:
    return HeldCloses(barrier=BARRIER, clock=clock)


def _busy(_held: HeldClose) -> bool:
    return False


def _idle(_held: HeldClose) -> bool:
    return True


def test_a_close_waits_while_its_data_partition_is_behind_and_busy() -> None:
    clock = FakeClock()
    closes = _closes(clock)
    closes.hold(_close("a", 5_000), partition=0, record=None)
    closes.data_seen(0, _data(5_000))  # sent before (or with) the close: still catching up
    clock.now += 4.9
    assert closes.due(data_idle=_busy) == []
    assert closes.items(SessionKey("acme", "a")) and len(closes) == 1


def test_stream_time_past_the_close_releases_it_at_once() -> None:
    clock = FakeClock()
    closes = _closes(clock)
    closes.hold(_close("a", 5_000), partition=0, record=None)
    closes.hold(_close("b", 5_000), partition=1, record=None)
    closes.data_seen(0, _data(5_200))  # within the grace: producers may land out of order
    assert closes.due(data_idle=_busy) == []
    closes.data_seen(0, _data(5_201))  # another session's data, later by more than the grace
    released = closes.due(data_idle=_busy)
    assert [h.event.session_id for h in released] == ["a"]
    assert closes.get(SessionKey("acme", "b")) is not None and closes.get(SessionKey("acme", "a")) is None


def test_a_quiet_partition_releases_after_the_grace_and_a_busy_one_at_the_limit() -> None:
    clock = FakeClock()
    closes = _closes(clock)
    closes.hold(_close("quiet", 5_000), partition=0, record=None)
    closes.hold(_close("busy", 5_000), partition=1, record=None)

    def idle(held: HeldClose) -> bool:
        return held.partition == 0

    clock.now += 0.19
    assert closes.due(data_idle=idle) == []  # inside the grace even when quiet
    clock.now += 0.02
    assert [h.event.session_id for h in closes.due(data_idle=idle)] == ["quiet"]
    clock.now += 4.8
    assert [h.event.session_id for h in closes.due(data_idle=idle)] == ["busy"]
    assert len(closes) == 0


def test_revoked_partitions_drop_their_closes_and_stream_time() -> None:
    clock = FakeClock()
    closes = _closes(clock)
    closes.hold(_close("a", 10), partition=3, record=None)
    closes.data_seen(3, _data(5))
    closes.forget_partitions([3])
    assert len(closes) == 0
    closes.hold(_close("a", 4), partition=3, record=None)
    assert closes.due(data_idle=_busy) == []  # stream time 5 was forgotten with the partition


steps = st.lists(
    st.one_of(
        st.tuples(st.just("hold"), st.integers(0, 5), st.integers(0, 2), st.integers(0, 200)),
        st.tuples(st.just("data"), st.integers(0, 2), st.integers(0, 500)),
        st.tuples(st.just("tick"), st.integers(0, 3000)),
        st.tuples(st.just("due"), st.booleans()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_every_close_is_released_once_and_never_before_its_barrier(script: list[tuple]) -> None:  # type: ignore[type-arg]
    clock = FakeClock()
    closes = _closes(clock)
    held_at: dict[str, tuple[float, int, int]] = {}  # session -> (since, partition, ts)
    data_time: dict[int, int] = {}
    released: list[str] = []
    for step in script:
        if step[0] == "hold":
            _, n, partition, ts = step
            sid = f"s{n}"
            if sid in held_at:  # the processor releases a held close before holding another
                continue
            closes.hold(_close(sid, ts), partition=partition, record=None)
            held_at[sid] = (clock.now, partition, ts)
        elif step[0] == "data":
            _, partition, ts = step
            closes.data_seen(partition, _data(ts))
            data_time[partition] = max(data_time.get(partition, -1), ts)
        elif step[0] == "tick":
            clock.now += step[1] / 1000.0
        else:
            quiet = step[1]
            for h in closes.due(data_idle=lambda _p, q=quiet: q):
                sid = h.event.session_id
                since, partition, ts = held_at.pop(sid)
                waited = clock.now - since
                assert (
                    data_time.get(partition, -1) > ts + BARRIER.grace_ms
                    or waited >= BARRIER.max_hold_ms / 1000.0
                    or (quiet and waited >= BARRIER.grace_ms / 1000.0)
                ), f"{sid} released before its barrier"
                released.append(sid)
    assert set(held_at) == {s for s in held_at if closes.get(SessionKey("acme", s)) is not None}
    clock.now += BARRIER.max_hold_ms / 1000.0
    late = [h.event.session_id for h in closes.due(data_idle=_busy)]
    assert sorted(late) == sorted(held_at), "a close outlived the hold limit"
    assert len(closes) == 0


# -- on a real broker ------------------------------------------------------------------

PARTITIONS = 2
BUNDLE = (
    Path(__file__).resolve().parents[2] / "pipelines" / "bundles" / "voice_assistant_bundle_v1.json"
)


@pytest.fixture(scope="module")
def bundle() -> PipelineBundle:
    return read_bundle(BUNDLE)


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _of(rows: list[LoggedEvent], session: str, kind: ev.EventType) -> list[LoggedEvent]:
    return [r for r in rows if r.event.session_id == session and r.event.event_type is kind]


def _closed(bootstrap: str, prefix: str, sessions: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = read_log(bootstrap, prefix, partitions=PARTITIONS)
        return sum(r.event.event_type is ev.EventType.SESSION_CLOSE for r in rows) >= sessions

    return check


@pytest.mark.kafka
def test_hang_ups_behind_a_backlog_follow_the_last_words(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], bundle: PipelineBundle
) -> None:
    """Everything is in Kafka before the processor starts, so control (all the opens and
    closes) is dispatched ahead of every transcript: the race at its worst."""
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=PARTITIONS))
    client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
    names = [f"caller-{n:02d}" for n in range(12)]
    sent: set[str] = set()
    for name in names:
        s = client.open_session(name)
        sent.add(s.send_transcript("what time is it").event_id)
        sent.add(s.close(reason="hangup").event_id)
    assert client.flush() == 0
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=bundle, drain_grace_s=5
    )
    with ProcessorThread(config):
        _wait_for(_closed(kafka_bootstrap, prefix, len(names)), 60, "every close in the log")
    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    dlq = read_dlq(kafka_bootstrap, prefix, partitions=PARTITIONS)
    assert [r.event.payload.reason for r in dlq] == []  # type: ignore[attr-defined]
    assert check_log(rows) == []
    assert sent <= {r.event.event_id for r in rows}
    for name in names:
        (opened,) = _of(rows, name, ev.EventType.TURN_OPEN)
        (closed,) = _of(rows, name, ev.EventType.SESSION_CLOSE)
        assert opened.event.seq < closed.event.seq, f"{name}: the close overtook the transcript"


@pytest.mark.kafka
def test_a_held_close_survives_a_processor_restart(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], bundle: PipelineBundle
) -> None:
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=PARTITIONS))
    client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
    s = client.open_session("caller-held")
    s.send_transcript("stop")
    time.sleep(0.05)  # a later millisecond: data stamped with the close's own ms releases it
    close_id = s.close(reason="hangup").event_id
    assert client.flush() == 0
    # The first processor never lets the close go: nothing later arrives, the grace is long.
    patient = CloseBarrier(grace_ms=600_000, max_hold_ms=600_000)
    first = ProcessorConfig(
        bootstrap=kafka_bootstrap,
        prefix=prefix,
        bundle=bundle,
        drain_grace_s=5,
        processor_id="patient",
        close_barrier=patient,
    )
    with ProcessorThread(first) as running:
        _wait_for(lambda: len(running.processor.closes) == 1, 60, "the close to be held")
        _wait_for(lambda: running.processor.stats.turns_opened == 1, 60, "the transcript's turn")
    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    assert not _of(rows, "caller-held", ev.EventType.SESSION_CLOSE)
    second = ProcessorConfig(
        bootstrap=kafka_bootstrap,
        prefix=prefix,
        bundle=bundle,
        drain_grace_s=5,
        processor_id="next",
    )
    with ProcessorThread(second):
        _wait_for(_closed(kafka_bootstrap, prefix, 1), 60, "the restored close in the log")
    rows = read_log(kafka_bootstrap, prefix, partitions=PARTITIONS)
    (closed,) = _of(rows, "caller-held", ev.EventType.SESSION_CLOSE)
    assert closed.event.event_id == close_id
    assert read_dlq(kafka_bootstrap, prefix, partitions=PARTITIONS) == []
    assert check_log(rows) == []
