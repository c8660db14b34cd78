"""Ingress lanes: header routing, bounded per-lane queues, a deterministic
control-first scheduler, pause/resume backpressure and deterministic shedding.

The processor builds a :class:`LaneIngress`, calls ``poll()`` then ``next()`` in
its loop, turns every :class:`ShedDecision` into a Shed event and every
:class:`RejectedRecord` into a DLQ record, and commits ``positions()`` with
``group_metadata()`` through its transactional producer.
"""

from __future__ import annotations

from streams.lanes.config import (
    LaneConfig,
    LaneLimits,
    LaneWeights,
    PrefetchLimits,
    ShedPolicy,
    ShedVictim,
)
from streams.lanes.errors import IngressError, LaneConfigError, LanesError
from streams.lanes.ingress import DEFAULT_INGRESS_MODE, IngressMode, LaneIngress, PartitionsCallback
from streams.lanes.offsets import OffsetTracker
from streams.lanes.records import (
    LANE_HEADER,
    SESSION_HEADER,
    LaneRecord,
    RecordPosition,
    RejectedRecord,
    session_hint,
    tenant_hint,
)
from streams.lanes.scheduler import LaneScheduler, Offer, SmoothWeightedRoundRobin
from streams.lanes.shedding import ShedDecision

__all__ = [
    "DEFAULT_INGRESS_MODE",
    "LANE_HEADER",
    "SESSION_HEADER",
    "IngressError",
    "IngressMode",
    "LaneConfig",
    "LaneConfigError",
    "LaneIngress",
    "LaneLimits",
    "LaneRecord",
    "LaneScheduler",
    "LaneWeights",
    "LanesError",
    "Offer",
    "OffsetTracker",
    "PartitionsCallback",
    "PrefetchLimits",
    "RecordPosition",
    "RejectedRecord",
    "ShedDecision",
    "ShedPolicy",
    "ShedVictim",
    "SmoothWeightedRoundRobin",
    "session_hint",
    "tenant_hint",
]
