"""Data of a reopened session may overtake its SESSION_OPEN; data sent before a close stays out.

The lanes are separate topics, so a session's data and control events arrive in no
fixed order. Which incarnation a transcript belongs to is decided by the voice
service's clock: sent after the SESSION_CLOSE, it opens the session again (the open
is recorded when it arrives); sent before, it is dead-lettered with the reason. (The
processor holds a close until its data partition has caught up, test_close_barrier.py,
so that last case is left to data later than the barrier's limits.)
"""

from __future__ import annotations

import asyncio

from replay.logcheck import check_log
from streams.abi import events as ev
from tests.runtime.test_engine_properties import SESSION, _Driver


def _final(text: str) -> ev.Transcript:
    return ev.Transcript(kind=ev.TranscriptKind.FINAL, text=text)


def test_a_transcript_sent_after_the_close_reopens_the_session_before_its_open() -> None:
    driver = _Driver()

    async def scenario() -> None:
        driver.ingress(ev.SessionOpen(transport="sdk", locale="en-US"))
        driver.ingress(ev.SessionClose(reason="bye"))
        driver.ingress(_final("play some music"))  # sent after the close, before the new open
        driver.ingress(ev.SessionOpen(transport="sdk", locale="en-US"))
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    asyncio.run(scenario())
    assert driver.dlq == []
    rows = driver.sink.log()
    admits = [r.event.payload for r in rows if isinstance(r.event.payload, ev.Admit)]
    assert [a.reason for a in admits] == [None, "implicit session reopen"]
    opens = [r.event.turn_id for r in rows if r.event.event_type is ev.EventType.TURN_OPEN]
    assert opens == [f"{SESSION}-t1"]
    seqs = [r.event.seq for r in rows]
    assert seqs == list(range(len(seqs)))  # the log continues across the reopen


def test_a_transcript_sent_before_the_close_is_dead_lettered() -> None:
    driver = _Driver()

    async def scenario() -> None:
        driver.ingress(ev.SessionOpen(transport="sdk", locale="en-US"))
        early = driver.seq  # this transcript is stamped before the close...
        driver.seq += 1
        driver.ingress(ev.SessionClose(reason="bye"))
        late_seq, driver.seq = driver.seq, early
        driver.ingress(_final("what time is it"))  # ...and arrives after it
        driver.seq = late_seq

    asyncio.run(scenario())
    assert driver.dlq == [f"session {SESSION} is closed or was rejected"]
    assert check_log(driver.sink.log()) == []


def test_a_transcript_sent_before_the_close_stays_out_of_the_reopened_call() -> None:
    """A reconnect reuses the session id and its SESSION_OPEN (control) overtakes the old
    call's last transcript: that transcript must not become a turn of the new call."""
    driver = _Driver()

    async def scenario() -> None:
        driver.ingress(ev.SessionOpen(transport="sdk", locale="en-US"))
        early = driver.seq  # stamped before the close...
        driver.seq += 1
        driver.ingress(ev.SessionClose(reason="bye"))
        driver.ingress(ev.SessionOpen(transport="sdk", locale="en-US"))  # the reconnect
        late_seq, driver.seq = driver.seq, early
        driver.ingress(_final("old call's last words"))  # ...arriving after both
        driver.seq = late_seq
        driver.ingress(_final("new call"))
        driver.ingress(ev.SessionClose(reason="bye"))

    asyncio.run(scenario())
    assert driver.dlq == [f"sent before session {SESSION} last closed (the previous call's)"]
    rows = driver.sink.log()
    texts = [r.event.payload.text for r in rows if isinstance(r.event.payload, ev.Transcript)]
    assert texts == ["new call"]
    assert check_log(rows) == []
