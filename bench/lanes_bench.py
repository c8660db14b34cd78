"""Control-lane latency with the data lane saturated: lanes (two ingress shapes) vs FIFO.

Latency is produce → the control record handed out by the scheduler. A separate
process floods the data topic with 1 KiB records faster than the consumer can
"process" them (a fixed busy cost per data record), so a backlog builds exactly
as it does when STT falls behind. Every ``PROBE_MS`` it produces a control
record stamped with its wall-clock send time.

* ``shared``: one consumer for all lanes, bounded prefetch, pause at high watermark.
* ``dedicated-control``: data consumer + a control consumer following its assignment.
* baseline ``single-topic FIFO``: control records interleaved in the data topic,
  consumed in order by a plain consumer with librdkafka's default prefetch.

Run: ``python -m bench.lanes_bench [--full]`` (bootstrap from RSPP_BOOTSTRAP or
127.0.0.1:9092).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.harness import scratch_prefix
from streams.lanes import IngressMode, LaneConfig, LaneIngress, ShedDecision
from streams.topics import TopicLayout, apply_topics

__all__ = ["run"]

RECORD_BYTES = 1024
DATA_RATE = 8000  # records/s offered
DATA_COST_US = 200  # per data record: ~5000 records/s capacity, so the data lane saturates
PROBE_MS = 20
SESSIONS = 16
PARTITIONS = 3
TS_HEADER = "bench_ts_ns"


def _loadgen(bootstrap: str, data_topic: str, probe_topic: str, seconds: float) -> None:
    from confluent_kafka import Producer

    data = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": 1})
    # Probes on their own producer with no linger, so data batching never delays them.
    probe = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1})
    payload = os.urandom(RECORD_BYTES)
    start = time.monotonic()
    sent = 0
    next_probe = start
    n = 0
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        due = int((now - start) * DATA_RATE) - sent
        for _ in range(max(0, due)):
            session = f"s{sent % SESSIONS}"
            data.produce(
                data_topic, key=session, value=payload,
                headers=[("rspp_lane", b"data"), ("rspp_session", session.encode())],
            )
            sent += 1
        if now >= next_probe:
            session = f"s{n % SESSIONS}"
            n += 1
            probe.produce(
                probe_topic, key=session, value=b"cancel",
                headers=[
                    ("rspp_lane", b"control"),
                    ("rspp_session", session.encode()),
                    (TS_HEADER, str(time.time_ns()).encode()),
                ],
            )
            next_probe += PROBE_MS / 1000
        data.poll(0)
        probe.poll(0)
        time.sleep(0.002)
    data.flush(5)
    probe.flush(5)


def _spin(us: int) -> None:
    end = time.perf_counter_ns() + us * 1000
    while time.perf_counter_ns() < end:
        pass


def _warm_up(bootstrap: str, topic: str, dispatched: Any) -> None:
    """One unstamped control record per partition, then wait until all come out: the
    measured window starts with every consumer fetching (first fetch after an
    assignment waits on offset lookups, which is not what this bench measures)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for partition in range(PARTITIONS):
        producer.produce(
            topic, value=b"warm-up", partition=partition,
            headers=[("rspp_lane", b"control"), ("rspp_session", b"warm-up")],
        )
    producer.flush(10)
    seen = 0
    deadline = time.monotonic() + 20
    while seen < PARTITIONS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"warm-up records did not arrive on {topic}")
        seen += dispatched()


def _probe_latency(headers: Any) -> float | None:
    for key, value in headers or ():
        if key == TS_HEADER:
            return (time.time_ns() - int(value)) / 1e6
    return None


class _Load:
    """The load generator in its own interpreter, so it never competes for our GIL.
    A plain subprocess (not multiprocessing) works whatever module is ``__main__``."""

    def __init__(self, bootstrap: str, data_topic: str, probe_topic: str, seconds: float) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.lanes_bench", "--loadgen",
             bootstrap, data_topic, probe_topic, str(seconds)],
            env=env,
        )

    def is_alive(self) -> bool:
        return self._proc.poll() is None

    def stop(self) -> None:
        if self.is_alive():
            self._proc.terminate()
        self._proc.wait(10)


def _measure_lanes(bootstrap: str, mode: IngressMode, seconds: float) -> list[float]:
    layout = TopicLayout(prefix=scratch_prefix("lanes"), partitions=PARTITIONS)
    apply_topics(bootstrap, layout)
    sheds: list[ShedDecision] = []
    ingress = LaneIngress(
        bootstrap=bootstrap, group_id=f"{layout.prefix}.g", layout=layout,
        config=LaneConfig(), mode=mode, on_shed=sheds.append,
    )
    latencies: list[float] = []
    proc: _Load | None = None
    try:
        def lanes_dispatched() -> int:
            ingress.poll(0.01)
            count = 0
            while ingress.next() is not None:
                count += 1
            return count

        _warm_up(bootstrap, layout.control, lanes_dispatched)
        proc = _Load(bootstrap, layout.data, layout.control, seconds)
        # Spawned child needs a moment to import; measure only while it runs.
        end = time.monotonic() + seconds + 3
        while time.monotonic() < end and (proc.is_alive() or len(ingress.scheduler)):
            ingress.poll(0.0 if len(ingress.scheduler) else 0.01)
            record = ingress.next()
            if record is None:
                continue
            if record.lane.value == "control":
                latency = _probe_latency(record.headers)
                if latency is not None:
                    latencies.append(latency)
            else:
                _spin(DATA_COST_US)
            if not proc.is_alive() and not latencies:
                break
    finally:
        if proc is not None:
            proc.stop()
        ingress.close()
    return latencies


def _measure_fifo(bootstrap: str, seconds: float) -> list[float]:
    from confluent_kafka import Consumer

    layout = TopicLayout(prefix=scratch_prefix("fifo"), partitions=PARTITIONS)
    apply_topics(bootstrap, layout)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{layout.prefix}.g",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([layout.data])
    latencies: list[float] = []
    proc: _Load | None = None
    try:
        def fifo_dispatched() -> int:
            msg = consumer.poll(0.01)
            return int(msg is not None and msg.error() is None)

        _warm_up(bootstrap, layout.data, fifo_dispatched)
        proc = _Load(bootstrap, layout.data, layout.data, seconds)
        end = time.monotonic() + seconds + 3
        while time.monotonic() < end:
            msg = consumer.poll(0.01)
            if msg is None or msg.error() is not None:
                if not proc.is_alive():
                    break
                continue
            latency = _probe_latency(msg.headers())
            if latency is not None:
                latencies.append(latency)
            else:
                _spin(DATA_COST_US)
    finally:
        if proc is not None:
            proc.stop()
        consumer.close()
    return latencies


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(*, quick: bool, bootstrap: str) -> list[dict[str, Any]]:
    seconds = 6.0 if quick else 20.0
    fifo = _measure_fifo(bootstrap, seconds)
    fifo_p99 = _pct(fifo, 0.99)
    rows: list[dict[str, Any]] = []
    for mode in (IngressMode.SHARED, IngressMode.DEDICATED_CONTROL):
        lat = _measure_lanes(bootstrap, mode, seconds)
        p99 = _pct(lat, 0.99)
        rows.append(
            {
                "name": f"control latency p99 ({mode.value} ingress, data saturated)",
                "unit": "ms",
                "value": round(p99, 2),
                "baseline": "single-topic FIFO",
                "baseline_value": round(fifo_p99, 2),
                "ratio": round(fifo_p99 / p99, 1) if p99 > 0 else float("inf"),
                "extra": {
                    "p50": round(_pct(lat, 0.5), 2),
                    "max": round(max(lat, default=float("nan")), 2),
                    "probes": len(lat),
                    "baseline_p50": round(_pct(fifo, 0.5), 2),
                    "baseline_probes": len(fifo),
                    "mean": round(statistics.fmean(lat), 2) if lat else None,
                },
            }
        )
    return rows


def main() -> int:
    if sys.argv[1:2] == ["--loadgen"]:
        _loadgen(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
        return 0
    bootstrap = os.environ.get("RSPP_BOOTSTRAP", "127.0.0.1:9092")
    rows = run(quick="--full" not in sys.argv, bootstrap=bootstrap)
    print(f"{'variant':<62} {'p50 ms':>8} {'p99 ms':>8} {'FIFO p99':>10} {'ratio':>8}")
    for row in rows:
        print(
            f"{row['name']:<62} {row['extra']['p50']:>8} {row['value']:>8} "
            f"{row['baseline_value']:>10} {row['ratio']:>7}x"
        )
    if rows:
        print(f"FIFO p50 {rows[0]['extra']['baseline_p50']} ms, probes: "
              + ", ".join(str(r["extra"]["probes"]) for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
