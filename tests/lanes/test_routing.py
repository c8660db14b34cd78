"""Header hints: ``rspp_session`` / ``rspp_tenant`` are read for shedding, never required."""

from __future__ import annotations

import pytest

from streams.lanes import session_hint, tenant_hint


def test_session_is_utf8_and_other_headers_are_ignored() -> None:
    headers = [("ce_id", b"\xff"), ("rspp_session", "café".encode()), ("rspp_lane", b"data")]
    assert session_hint(headers) == "café"


def test_last_header_wins_like_kafka_last_header() -> None:
    headers = [("rspp_session", b"a"), ("rspp_tenant", b"acme"), ("rspp_session", b"b")]
    assert session_hint(headers) == "b"
    assert tenant_hint(headers) == "acme"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("rspp_lane", b"data")],
        [("rspp_session", None)],
        [("rspp_session", b"")],
        [("rspp_session", b"\xc3\x28")],
    ],
)
def test_missing_or_unusable_hints_are_empty_not_errors(
    headers: list[tuple[str, bytes | None]] | None,
) -> None:
    assert session_hint(headers) == ""
    assert tenant_hint(headers) == ""
