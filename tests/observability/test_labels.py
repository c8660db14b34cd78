"""Label values stay few: reasons lose their ids and numbers, and each label is capped."""

from __future__ import annotations

from streams.observability.labels import MAX_VALUES, LabelSet, reason_tag


def test_reason_tags_drop_ids_numbers_and_quoted_values() -> None:
    assert reason_tag("cancelled: barge-in") == "cancelled"
    assert reason_tag("session call-42 is closed or was rejected", drop=("call-42",)) == (
        "session_is_closed"
    )
    assert reason_tag("out-of-order seq 17 on data lane (last applied 16)") == (
        "out-of-order_seq_on"
    )
    assert reason_tag("tenant_id 'globex' arrived on tenant 'acme''s topic") == (
        "tenant_id_arrived_on"
    )
    assert reason_tag("node tts failed: provider timeout") == "node_tts_failed"
    assert reason_tag("1234: 99") == "unknown"


def test_a_label_admits_a_bounded_set_of_values() -> None:
    labels = LabelSet()
    values = [labels(f"reason_{i}") for i in range(MAX_VALUES + 10)]
    assert values[:MAX_VALUES] == [f"reason_{i}" for i in range(MAX_VALUES)]
    assert set(values[MAX_VALUES:]) == {"other"}
    assert labels("reason_3") == "reason_3"  # one admitted keeps its own value
