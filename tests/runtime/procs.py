"""Helpers of the runtime's process-level tests: ``rspp run`` subprocesses and a live log tail.

- :class:`RsppProcess` runs ``rspp run`` as a real subprocess, so a test can
  SIGKILL it (no drain, no commit, an open transaction left behind) or SIGTERM it
  (drain) and read its ``--json`` summary.
- :class:`LogTail` follows ``<prefix>.log`` read_committed and keeps the turn
  state a test waits on (leases, open turns, closes) without re-reading the topic.
- :func:`accounted` matches the ingress event ids a voice service sent against the
  log and the DLQ.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.abi.errors import CodecError
from streams.testing import LoggedEvent
from streams.topics import TopicLayout

__all__ = ["REPO", "LogTail", "RsppProcess", "accounted", "wait_for"]

REPO = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


class RsppProcess:
    """``rspp run`` in a subprocess; ``start`` again after a kill restarts the same holder."""

    def __init__(
        self, *, bootstrap: str, prefix: str, bundle: Path, holder: str, workdir: Path,
        partitions: int, extra: Iterable[str] = (),
    ) -> None:
        self.holder = holder
        self.workdir = workdir
        self.args = [
            "run", "--prefix", prefix, "--bundle", str(bundle), "--id", holder,
            "--bootstrap", bootstrap, "--partitions", str(partitions), "--json", *extra,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _path(self, suffix: str) -> Path:
        return self.workdir / f"{self.holder}.{self.starts}.{suffix}"

    def start(self) -> RsppProcess:
        assert not self.alive, f"{self.holder} is still running"
        self.starts += 1
        with self._path("out").open("wb") as out, self._path("err").open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from streams.cli import main; main()", *self.args],
                stdout=out, stderr=err, cwd=REPO,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL and reap: no drain, no commit."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """SIGTERM (drain) and wait; returns the ``--json`` summary."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.holder} did not drain within {timeout}s") from None
        assert code == 0, f"{self.holder} exited {code}:\n{self.stderr()[-2000:]}"
        summary: dict[str, Any] = json.loads(self._path("out").read_text())
        return summary

    def stderr(self) -> str:
        path = self._path("err")
        return path.read_text(errors="replace") if path.exists() else ""

    def ensure_dead(self) -> None:
        if self.alive:
            self.kill()


class LogTail:
    """A read_committed follower of ``<prefix>.log`` (all partitions, from the beginning)."""

    def __init__(self, bootstrap: str, prefix: str, *, partitions: int) -> None:
        self.codec = EventCodec()
        self.rows: list[LoggedEvent] = []
        self.open_turns: dict[str, LoggedEvent] = {}  # turn id -> its TURN_OPEN
        self.audio_outputs: Counter[str] = Counter()  # turn id -> audio NODE_OUTPUTs seen
        self.counts: Counter[ev.EventType] = Counter()
        self.grants: list[tuple[int, int, str]] = []  # (partition, epoch, holder)
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-tail-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        topic = TopicLayout(prefix=prefix).log
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )

    def poll(self, budget_s: float = 0.2) -> None:
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            msgs = self._consumer.consume(num_messages=500, timeout=0.05)
            for msg in msgs:
                if msg.error() is None:
                    self._add(LoggedEvent(msg.partition(), msg.offset(), self.codec.decode(msg.value())))
            if not msgs:
                return

    def _add(self, row: LoggedEvent) -> None:
        self.rows.append(row)
        e = row.event
        self.counts[e.event_type] += 1
        if isinstance(e.payload, ev.LeaseGranted):
            self.grants.append((e.payload.partition, e.payload.epoch, e.payload.holder))
        elif e.event_type is ev.EventType.TURN_OPEN and e.turn_id:
            self.open_turns[e.turn_id] = row
        elif e.event_type is ev.EventType.TURN_CLOSE and e.turn_id:
            self.open_turns.pop(e.turn_id, None)
        elif isinstance(e.payload, ev.NodeOutput) and e.payload.kind == "audio" and e.turn_id:
            self.audio_outputs[e.turn_id] += 1

    def until(self, predicate: Callable[[LogTail], bool], timeout: float, what: str) -> None:
        def polled() -> bool:
            self.poll()
            return predicate(self)

        wait_for(polled, timeout, what)

    def close(self) -> None:
        self._consumer.close()


def accounted(
    sent: Iterable[str], log: list[LoggedEvent], dlq: list[LoggedEvent]
) -> tuple[set[str], set[str]]:
    """``(missing, duplicated)``: sent ids in neither log nor DLQ, and ids recorded twice."""
    codec = EventCodec()
    recorded = Counter(r.event.event_id for r in log)
    dead: set[str] = set()
    for r in dlq:
        payload = r.event.payload
        assert isinstance(payload, ev.DeadLetter)
        with contextlib.suppress(CodecError):
            if payload.original_bytes:
                dead.add(codec.decode(payload.original_bytes).event_id)
    sent_ids = set(sent)
    missing = {i for i in sent_ids if i not in recorded and i not in dead}
    duplicated = {i for i in sent_ids if recorded[i] > 1 or (recorded[i] and i in dead)}
    return missing, duplicated
