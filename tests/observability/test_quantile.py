"""``rspp top``'s percentiles: PromQL's histogram_quantile on cumulative buckets."""

from __future__ import annotations

import math

from streams.observability.top import histogram_quantile


def test_quantiles_interpolate_inside_the_bucket() -> None:
    buckets = [(0.1, 10.0), (0.2, 30.0), (0.5, 40.0), (math.inf, 40.0)]
    assert histogram_quantile(0.5, buckets) == 0.1 + 0.1 * (20 - 10) / (30 - 10)
    assert histogram_quantile(0.25, buckets) == 0.1 * 10 / 10
    assert histogram_quantile(0.95, buckets) == 0.2 + 0.3 * (38 - 30) / 10


def test_the_inf_bucket_answers_the_highest_finite_bound_and_empty_is_none() -> None:
    assert histogram_quantile(0.99, [(0.1, 1.0), (math.inf, 5.0)]) == 0.1
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.5, []) is None
