"""Codec encode+decode µs/event vs raw fastavro schemaless, same records, same process.

Rows: the typed codec (Envelope -> frame -> Envelope) and the record layer
(framing + schema id + fastavro) against raw ``schemaless_writer`` +
``schemaless_reader`` on the very records the codec hands to fastavro. Runs are
interleaved and the best round of each is kept, so machine noise hits all alike.
Run: ``python -m bench.codec_bench [--quick]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

import orjson
from fastavro import schemaless_reader, schemaless_writer

from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.abi.records import envelope_to_record
from streams.abi.registry import FileRegistry

__all__ = ["run"]


def _events() -> list[ev.Envelope]:
    ts = datetime(2025, 1, 1, tzinfo=UTC)
    payloads: list[ev.Payload] = [
        ev.AudioChunk(codec="pcm_s16le", sample_rate=16000, channels=1, seq=1, audio=b"\x00" * 640),
        ev.Transcript(kind=ev.TranscriptKind.PARTIAL, text="turn the lights on", confidence=0.8),
        ev.Cancel(scope=ev.CancelScope.TURN, target="turn-9", reason="barge_in"),
        ev.NodeOutput(output_seq=3, kind="text", text="Sure, turning them on.", final=True),
    ]
    return [
        ev.Envelope.new(p, tenant_id="acme", session_id="sess-42", seq=i, lease_epoch=3, turn_id="turn-9", ts=ts)
        for i, p in enumerate(payloads)
    ]


def _timed(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def run(*, quick: bool) -> list[dict[str, Any]]:
    codec = EventCodec(registry=FileRegistry())
    schema = codec._parsed  # the same parsed schema: the comparison is about everything around it
    events = _events()
    records = [envelope_to_record(e) for e in events]
    frames = [codec.encode(e) for e in events]
    n, rounds = (500, 3) if quick else (5000, 7)

    def raw() -> None:
        for record in records:
            out = BytesIO()
            schemaless_writer(out, schema, record)
            schemaless_reader(BytesIO(out.getvalue()), schema, None)

    def typed() -> None:
        for event in events:
            codec.decode(codec.encode(event))

    def record_layer() -> None:
        for record in records:
            codec.decode_record(codec.encode_record(record))

    best = {"raw": float("inf"), "typed": float("inf"), "record": float("inf")}
    for _ in range(rounds):  # interleaved: each round times all three back to back
        best["raw"] = min(best["raw"], _timed(raw, n) / len(records))
        best["typed"] = min(best["typed"], _timed(typed, n) / len(events))
        best["record"] = min(best["record"], _timed(record_layer, n) / len(records))
    base = best["raw"]
    rows = [
        ("codec encode+decode (typed Envelope)", best["typed"]),
        ("codec encode+decode (records, framing + registry id)", best["record"]),
    ]
    avg_bytes = sum(len(f) for f in frames) / len(frames)
    return [
        {
            "name": name,
            "unit": "us/event",
            "value": round(value, 3),
            "baseline": "raw fastavro schemaless",
            "baseline_value": round(base, 3),
            "ratio": round(value / base, 3),
            "target_ratio": 1.2,
            "avg_frame_bytes": round(avg_bytes, 1),
        }
        for name, value in rows
    ]


def main() -> None:
    rows = run(quick="--quick" in sys.argv)
    width = max(len(r["name"]) for r in rows)
    print(f"{'benchmark':<{width}}  {'us/event':>9}  {'raw':>9}  {'ratio':>6}")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['value']:>9.2f}  {r['baseline_value']:>9.2f}  {r['ratio']:>6.2f}")
    print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
