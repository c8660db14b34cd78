"""Header-only routing: lane and session from ``rspp_lane`` / ``rspp_session``."""

from __future__ import annotations

import pytest

from streams.lanes import route
from streams.topics import Lane


def test_routes_each_lane_from_headers() -> None:
    for lane in Lane:
        assert route([("rspp_lane", lane.value.encode()), ("rspp_session", b"sess-1")]) == (
            lane,
            "sess-1",
        )


def test_session_is_utf8_and_other_headers_are_ignored() -> None:
    headers = [("ce_id", b"\xff"), ("rspp_session", "café".encode()), ("rspp_lane", b"data")]
    assert route(headers) == (Lane.DATA, "café")


def test_last_header_wins_like_kafka_last_header() -> None:
    headers = [("rspp_lane", b"data"), ("rspp_session", b"a"), ("rspp_lane", b"control")]
    assert route(headers) == (Lane.CONTROL, "a")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (None, "missing header rspp_lane"),
        ([], "missing header rspp_lane"),
        ([("rspp_session", b"s")], "missing header rspp_lane"),
        ([("rspp_lane", b"audio"), ("rspp_session", b"s")], "is not one of control|data|telemetry"),
        ([("rspp_lane", b"CONTROL"), ("rspp_session", b"s")], "is not one of"),
        ([("rspp_lane", None), ("rspp_session", b"s")], "is not one of"),
        ([("rspp_lane", b"data")], "missing header rspp_session"),
        ([("rspp_lane", b"data"), ("rspp_session", None)], "rspp_session is empty"),
        ([("rspp_lane", b"data"), ("rspp_session", b"")], "rspp_session is empty"),
        ([("rspp_lane", b"data"), ("rspp_session", b"\xc3\x28")], "not valid utf-8"),
        ([("rspp_lane", b"data"), ("rspp_session", b"  ")], "blank"),
    ],
)
def test_unusable_routing_headers_give_a_reason(
    headers: list[tuple[str, bytes | None]] | None, reason: str
) -> None:
    result = route(headers)
    assert isinstance(result, str)
    assert reason in result
