"""Scraping and reading ``/metrics`` in tests (prometheus-client's own text parser)."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["BUNDLE", "Scrape", "scrape"]

BUNDLE = (
    Path(__file__).resolve().parents[2] / "pipelines" / "bundles" / "voice_assistant_bundle_v1.json"
)


class Scrape:
    """One parsed exposition: samples by (name, labels)."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str, where: Callable[[dict[str, str]], bool] = lambda _: True) -> float:
        return sum(v for (n, lab), v in self.samples.items() if n == name and where(dict(lab)))

    def labels(self, name: str) -> list[dict[str, str]]:
        return [dict(lab) for (n, lab) in self.samples if n == name]


def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return Scrape(resp.read().decode())
