"""The ingress gate refuses whatever a model downstream would refuse, with a reason.

The property that matters: an event the gate lets through can always be frozen into a turn
plan (the models it flows into accept it), so nothing a producer sends can raise inside the
engine. The rules are read off those models, so tightening a model tightens the gate.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.models.plan import MAX_ID_LENGTH, SessionSnapshot, TurnOpenRequest
from streams.abi import events as ev
from streams.runtime.ingress_gate import PRODUCER_EVENT_TYPES, check_ingress
from streams.runtime.sessions import micros

DIGEST = "sha256:" + "0" * 64


def _event(payload: ev.Payload | None = None, **fields: object) -> ev.Envelope:
    payload = payload or ev.Transcript(kind=ev.TranscriptKind.FINAL, text="hi", confidence=0.9)
    event = ev.Envelope.new(payload, tenant_id="acme", session_id="call-1", seq=1)
    return replace(event, **fields)  # type: ignore[arg-type]


def test_a_valid_event_of_each_producer_type_passes() -> None:
    samples: list[ev.Payload] = [
        ev.AudioChunk(codec="pcm16", sample_rate=16000, channels=1, seq=0, audio=bytes(640)),
        ev.Transcript(kind=ev.TranscriptKind.PARTIAL, text="", confidence=None),
        ev.EndOfUtterance(),
        ev.SessionOpen(),
        ev.SessionClose(reason="hangup"),
        ev.Cancel(scope=ev.CancelScope.TURN, target=""),
        ev.Telemetry(name="rtt", value=1.5),
    ]
    for payload in samples:
        event = _event(payload, lane=payload.LANE)
        assert check_ingress(event, lane=payload.LANE) is None, payload


def test_producers_may_send_only_their_own_event_types_on_their_lane() -> None:
    assert PRODUCER_EVENT_TYPES[ev.Lane.CONTROL] == {
        ev.EventType.SESSION_OPEN,
        ev.EventType.SESSION_CLOSE,
        ev.EventType.CANCEL,
    }
    assert ev.EventType.ADMIT not in PRODUCER_EVENT_TYPES[ev.Lane.CONTROL]
    admit = _event(ev.Admit(reason="forged"), lane=ev.Lane.CONTROL)
    assert "ADMIT may not be sent on the control lane" in (
        check_ingress(admit, lane=ev.Lane.CONTROL) or ""
    )
    transcript_on_control = _event(lane=ev.Lane.CONTROL)
    assert "may not be sent on the control lane" in (
        check_ingress(transcript_on_control, lane=ev.Lane.CONTROL) or ""
    )
    lying_lane = _event(lane=ev.Lane.CONTROL)  # a transcript claiming control, on data
    assert "arrived on the data lane" in (check_ingress(lying_lane, lane=ev.Lane.DATA) or "")


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"tenant_id": ""}, "tenant_id is empty"),
        ({"session_id": ""}, "session_id is empty"),
        ({"session_id": "s" * (MAX_ID_LENGTH + 1)}, "session_id is 257 characters"),
        ({"event_id": ""}, "event_id is empty"),
        ({"correlation": ev.Correlation(correlation_id="")}, "correlation_id is empty"),
        ({"ts": datetime(1969, 12, 31, 23, 59, tzinfo=UTC)}, "before 1970"),
    ],
)
def test_envelope_fields_the_models_refuse_are_refused(fields: dict[str, object], needle: str) -> None:
    assert needle in (check_ingress(_event(**fields), lane=ev.Lane.DATA) or "")


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (ev.AudioChunk(codec="opus", sample_rate=16000, channels=1, seq=0, audio=b""), "codec"),
        (ev.AudioChunk(codec="pcm16", sample_rate=16000, channels=2, seq=0, audio=b""), "mono"),
        (ev.AudioChunk(codec="pcm16", sample_rate=0, channels=1, seq=0, audio=b""), "sample_rate"),
        (ev.AudioChunk(codec="pcm16", sample_rate=16000, channels=1, seq=0, audio=b"x"), "odd"),
        (ev.Transcript(kind=ev.TranscriptKind.FINAL, text="a", confidence=math.nan), "confidence"),
        (ev.Transcript(kind=ev.TranscriptKind.FINAL, text="a", confidence=1.5), "confidence"),
        (ev.Telemetry(name="x", value=math.inf), "not finite"),
    ],
)
def test_payload_values_the_nodes_cannot_take_are_refused(payload: ev.Payload, needle: str) -> None:
    event = _event(payload, lane=payload.LANE)
    assert needle in (check_ingress(event, lane=payload.LANE) or "")


_text = st.one_of(st.text(max_size=8), st.text(min_size=250, max_size=260), st.just(""))
_ts = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(tenant=_text, session=_text, correlation=_text, ts=_ts)
def test_whatever_the_gate_passes_can_be_frozen_into_a_turn_plan(
    tenant: str, session: str, correlation: str, ts: datetime
) -> None:
    event = _event(
        tenant_id=tenant,
        session_id=session,
        correlation=ev.Correlation(correlation_id=correlation),
        ts=ts,
    )
    if check_ingress(event, lane=ev.Lane.DATA) is not None:
        return
    # These raised inside the engine (and stopped the processor) before the gate existed.
    TurnOpenRequest(
        turn_id=f"{session}-t1",
        trigger="final_transcript",
        correlation_id=event.correlation.correlation_id,
        opened_at_us=micros(event.ts),
    )
    SessionSnapshot(
        tenant_id=event.tenant_id,
        session_id=event.session_id,
        pinned_bundle_digest=DIGEST,
        next_seq=0,
        last_epoch=0,
    )


def test_the_timestamp_floor_is_the_plan_models_own() -> None:
    just_before = datetime(1970, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
    assert check_ingress(_event(ts=just_before), lane=ev.Lane.DATA) is not None
    assert check_ingress(_event(ts=datetime(1970, 1, 1, tzinfo=UTC)), lane=ev.Lane.DATA) is None
