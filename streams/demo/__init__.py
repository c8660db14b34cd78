"""The main job end to end (`rspp demo`): spoken audio in, barge-in, durable log, replay, audit."""

from __future__ import annotations

from streams.demo.runner import DemoOptions, DemoResult, run_demo
from streams.demo.scenario import Scenario, Utterance, load_scenario

__all__ = ["DemoOptions", "DemoResult", "Scenario", "Utterance", "load_scenario", "run_demo"]
