"""Lane settings are validated once, at construction."""

from __future__ import annotations

import pytest

from streams.errors import StreamsError
from streams.lanes import (
    LaneConfig,
    LaneConfigError,
    LaneLimits,
    LanesError,
    LaneWeights,
    PrefetchLimits,
    ShedPolicy,
)
from streams.topics import Lane


def test_errors_are_rooted_in_streams_error() -> None:
    assert issubclass(LaneConfigError, LanesError)
    assert issubclass(LanesError, StreamsError)


@pytest.mark.parametrize(
    ("capacity", "high", "low"), [(10, 10, 2), (10, 5, 5), (10, 5, -1), (10, 11, 2)]
)
def test_watermarks_must_be_ordered_below_capacity(capacity: int, high: int, low: int) -> None:
    with pytest.raises(LaneConfigError, match="low_watermark < high_watermark < capacity"):
        LaneLimits(capacity=capacity, high_watermark=high, low_watermark=low)


def test_weights_must_be_positive() -> None:
    with pytest.raises(LaneConfigError):
        LaneWeights(data=0, telemetry=1)


def test_control_can_never_be_shed() -> None:
    with pytest.raises(LaneConfigError, match="control is never shed"):
        ShedPolicy(lanes=(Lane.TELEMETRY, Lane.CONTROL))


def test_shed_policy_rejects_duplicates_and_empty_batch() -> None:
    with pytest.raises(LaneConfigError):
        ShedPolicy(lanes=(Lane.DATA, Lane.DATA))
    with pytest.raises(LaneConfigError):
        ShedPolicy(batch=0)


def test_prefetch_is_bounded_and_maps_to_librdkafka_settings() -> None:
    settings = PrefetchLimits().consumer_settings()
    assert settings["queued.max.messages.kbytes"] == 256
    assert settings["fetch.max.bytes"] == 1_048_576
    assert settings["max.partition.fetch.bytes"] == 131_072
    assert settings["queued.min.messages"] == 64
    assert settings["fetch.queue.backoff.ms"] == 2
    with pytest.raises(LaneConfigError):
        PrefetchLimits(fetch_max_bytes=10)


def test_poll_batch_fits_in_the_smallest_headroom() -> None:
    config = LaneConfig(control=LaneLimits(capacity=20, high_watermark=17, low_watermark=4))
    assert config.poll_batch == 3
    assert LaneConfig().sheds(Lane.DATA) is False
    assert LaneConfig(shedding=ShedPolicy()).sheds(Lane.TELEMETRY) is True


def test_config_is_frozen_and_keyword_only() -> None:
    config = LaneConfig()
    with pytest.raises(AttributeError):
        config.shedding = ShedPolicy()  # type: ignore[misc]
    with pytest.raises(TypeError):
        LaneWeights(8, 1)  # type: ignore[call-arg]
