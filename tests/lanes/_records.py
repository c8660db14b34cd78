"""Record factories for the lane tests (no broker)."""

from __future__ import annotations

from streams.lanes import LaneRecord
from streams.topics import Lane

TOPICS = {Lane.CONTROL: "p.control", Lane.DATA: "p.data", Lane.TELEMETRY: "p.telemetry"}


def record(lane: Lane, offset: int, *, session: str = "s1", partition: int = 0) -> LaneRecord:
    return LaneRecord(
        lane=lane,
        session=session,
        topic=TOPICS[lane],
        partition=partition,
        offset=offset,
        key=session.encode(),
        value=b"x",
        headers=(("rspp_lane", lane.value.encode()), ("rspp_session", session.encode())),
        timestamp_ms=0,
    )


def stream(lanes: list[Lane]) -> list[LaneRecord]:
    """Records in the given lane order, offsets increasing per lane topic as Kafka would."""
    counters = dict.fromkeys(Lane, 0)
    out = []
    for i, lane in enumerate(lanes):
        out.append(record(lane, counters[lane], session=f"s{i % 3}"))
        counters[lane] += 1
    return out
