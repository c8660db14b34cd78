"""Routing headers: CloudEvents binary mode + rspp_*, parsed without decoding the body."""

from __future__ import annotations

import pytest

from streams.abi import events as ev
from streams.abi.errors import HeaderError
from streams.abi.headers import lane_of, parse_routing_headers, routing_headers
from tests.abi.samples import envelope


def test_headers_written_on_produce() -> None:
    event = envelope(ev.Cancel(scope=ev.CancelScope.TURN, target="turn-1"))
    headers = dict(routing_headers(event, source="urn:rspp:test"))
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == b"evt-1"
    assert headers["ce_type"] == b"rspp.events.Cancel"
    assert headers["ce_source"] == b"urn:rspp:test"
    assert headers["ce_time"] == b"2025-03-01T12:00:00.123456Z"
    assert headers["rspp_lane"] == b"control"
    assert headers["rspp_session"] == b"sess-1"
    assert headers["rspp_turn"] == b"turn-1"
    assert headers["rspp_epoch"] == b"4"
    assert headers["rspp_correlation"] == b"corr-1"
    assert headers["rspp_tenant"] == b"tenant-a"


def test_parse_round_trips_routing_fields() -> None:
    event = envelope(ev.Transcript(kind=ev.TranscriptKind.PARTIAL, text="he"))
    parsed = parse_routing_headers(routing_headers(event, source="s"))
    assert parsed.lane is ev.Lane.DATA
    assert parsed.lane == "data"
    assert (parsed.session_id, parsed.turn_id, parsed.epoch) == ("sess-1", "turn-1", 4)
    assert (parsed.tenant_id, parsed.correlation_id, parsed.event_id) == ("tenant-a", "corr-1", "evt-1")
    assert parsed.event_type is ev.EventType.TRANSCRIPT
    assert lane_of(routing_headers(event, source="s")) is ev.Lane.DATA


def test_unknown_ce_type_does_not_block_routing() -> None:
    parsed = parse_routing_headers([("rspp_lane", b"telemetry"), ("rspp_session", b"s"), ("ce_type", b"rspp.events.Future")])
    assert parsed.lane is ev.Lane.TELEMETRY
    assert parsed.event_type is None
    assert parsed.turn_id is None and parsed.epoch is None


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        (None, "missing header rspp_lane"),
        ([], "missing header rspp_lane"),
        ([("rspp_lane", b"urgent"), ("rspp_session", b"s")], "unknown value"),
        ([("rspp_lane", None), ("rspp_session", b"s")], "missing header rspp_lane"),
        ([("rspp_lane", b"data")], "missing header rspp_session"),
        ([("rspp_lane", b"data"), ("rspp_session", b"\xff\xfe")], "not UTF-8"),
        ([("rspp_lane", b"data"), ("rspp_session", None)], "has no value"),
        ([("rspp_lane", b"data"), ("rspp_session", b"s"), ("rspp_epoch", b"-1")], "rspp_epoch"),
    ],
)
def test_missing_or_garbled_headers_raise_header_error(headers: list[tuple[str, bytes | None]] | None, match: str) -> None:
    with pytest.raises(HeaderError, match=match):
        parse_routing_headers(headers)


def test_lane_of_rejects_missing_lane() -> None:
    with pytest.raises(HeaderError):
        lane_of([("rspp_session", b"s")])
    with pytest.raises(HeaderError):
        lane_of([("rspp_lane", b"bogus")])
