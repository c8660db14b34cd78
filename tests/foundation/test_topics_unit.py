"""Topic layout rules that need no broker."""

from __future__ import annotations

import pytest

from streams.errors import TopicLayoutError
from streams.topics import Lane, TopicLayout, TopicRole


def test_layout_names_every_role_under_the_prefix() -> None:
    layout = TopicLayout(prefix="prod.voice", partitions=12)
    assert [layout.topic(r) for r in TopicRole] == [
        "prod.voice.control",
        "prod.voice.data",
        "prod.voice.telemetry",
        "prod.voice.log",
        "prod.voice.leases",
        "prod.voice.sessions",
        "prod.voice.dlq",
    ]
    assert layout.lane_topic(Lane.CONTROL) == layout.control == "prod.voice.control"


@pytest.mark.parametrize("prefix", ["", "has space", "slash/y", "ünï"])
def test_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(TopicLayoutError, match="invalid prefix"):
        TopicLayout(prefix=prefix)


def test_partitions_must_be_positive() -> None:
    with pytest.raises(TopicLayoutError, match="partitions"):
        TopicLayout(prefix="p", partitions=0)
