"""Shared machinery of the fault suite and the soak: processes, traffic, the oracle.

- :class:`ProcessorProc` runs ``rspp run`` as a real subprocess (so it can be
  SIGKILLed, SIGSTOPped and measured) with its output in files.
- :class:`Traffic` is a voice service sending text turns, cancels and closes on
  many sessions and remembering every event id it sent.
- :func:`account` is the oracle: every sent event id must be recorded in the
  log or dead-lettered (or covered by a logged SHED), none recorded twice;
  :func:`verify` adds ``check_log`` and the replay engine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from replay.logcheck import check_log
from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.abi.errors import CodecError
from streams.client import VoiceClient, VoiceSession
from streams.testing import LoggedEvent, read_dlq, read_log

__all__ = [
    "BUNDLE",
    "Accounting",
    "ProcessorProc",
    "Traffic",
    "account",
    "group_lag",
    "rss_kb",
    "verify",
    "wait_for",
]

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "pipelines" / "bundles" / "voice_assistant_bundle_v1.json"
UTTERANCES = ("what time is it", "play some music", "turn on the kitchen lights", "stop")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def group_lag(bootstrap: str, group: str, topic: str, partitions: int) -> int | None:
    """Records of ``topic`` not yet covered by ``group``'s committed offsets (None: unknown).

    The processor commits its consumed offsets inside its transactions, only over
    records it handled (dispatched, shed or dead-lettered), so lag 0 means every
    record of the topic at this moment was handled and the outcome is durable.
    The ingress producers are not transactional: no control markers, so a fully
    consumed partition's committed offset equals its high watermark.
    """
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    quiet = logging.getLogger("rspp.kafka.lag")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    # Same group id, but never subscribe(): it does not join the group, only reads its offsets.
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "logger": quiet,
        }
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        committed = consumer.committed(tps, timeout=5)
        lag = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=5)
            lag += high - max(tp.offset, 0)
        return lag
    except KafkaException:
        return None
    finally:
        consumer.close()


def rss_kb(pid: int) -> int | None:
    """VmRSS of a live process in KiB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class ProcessorProc:
    """One ``rspp run`` subprocess slot; :meth:`start` again after a kill restarts it."""

    def __init__(
        self,
        *,
        bootstrap: str,
        prefix: str,
        holder: str,
        workdir: Path,
        partitions: int,
        group: str | None = None,
        session_timeout_ms: int | None = None,
        static: bool = False,
        commit_ms: int = 100,
        env: dict[str, str] | None = None,
    ) -> None:
        self.holder = holder
        self.workdir = workdir
        self.args = [
            "run",
            "--prefix",
            prefix,
            "--bundle",
            str(BUNDLE),
            "--id",
            holder,
            "--bootstrap",
            bootstrap,
            "--partitions",
            str(partitions),
            "--commit-ms",
            str(commit_ms),
            "--json",
        ]
        if group is not None:
            self.args += ["--group", group]
        if session_timeout_ms is not None:
            self.args += ["--session-timeout-ms", str(session_timeout_ms)]
        if static:
            self.args.append("--static")
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.max_rss_kb = 0

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"{self.holder}.{self.starts}.err"

    @property
    def stdout_path(self) -> Path:
        return self.workdir / f"{self.holder}.{self.starts}.out"

    def start(self) -> ProcessorProc:
        assert not self.alive, f"{self.holder} is still running"
        self.starts += 1
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from streams.cli import main; main()", *self.args],
                stdout=out,
                stderr=err,
                cwd=REPO,
                env=self.env,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def sample_rss(self) -> int | None:
        if not self.alive:
            return None
        rss = rss_kb(self.pid)
        if rss is not None:
            self.max_rss_kb = max(self.max_rss_kb, rss)
        return rss

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.alive:
            self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (drain), wait; SIGKILL if it overstays. Returns the exit code."""
        assert self.proc is not None
        if self.alive:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.holder} did not drain within {timeout}s") from None
        return int(self.proc.returncode)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return int(self.proc.wait(timeout))

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""


@contextlib.contextmanager
def processors(procs: list[ProcessorProc]) -> Iterator[list[ProcessorProc]]:
    """Every subprocess is killed on the way out, whatever happened."""
    try:
        yield procs
    finally:
        for p in procs:
            if p.alive:
                p.signal(signal.SIGCONT)
                p.kill()


@dataclass
class Traffic:
    """A voice service: text turns, some barge-ins, on ``sessions`` sessions."""

    bootstrap: str
    prefix: str
    sessions: int = 8
    seed: int = 0
    cancel_ratio: float = 0.1
    tenant: str = "acme"
    sent: dict[str, str] = field(default_factory=dict)  # event id -> session id
    _open: list[VoiceSession] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.client = VoiceClient(
            bootstrap=self.bootstrap, prefix=self.prefix, tenant_id=self.tenant
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_session = 0

    def _remember(self, session: VoiceSession, event: ev.Envelope) -> None:
        self.sent[event.event_id] = session.session_id

    def open(self) -> VoiceSession:
        sid = f"{self.prefix[-12:]}-s{self._next_session:03d}"
        self._next_session += 1
        session = VoiceSession(client=self.client, session_id=sid)
        self._remember(session, session.publish(ev.SessionOpen(transport="sdk", locale="en-US")))
        self._open.append(session)
        return session

    def step(self) -> None:
        """One ingress event on a random open session (opening sessions up to ``sessions``)."""
        if len(self._open) < self.sessions:
            self.open()
            return
        session = self.rng.choice(self._open)
        if self.rng.random() < self.cancel_ratio:
            self._remember(session, session.cancel())
        else:
            self._remember(session, session.send_transcript(self.rng.choice(UTTERANCES)))

    def rotate(self) -> None:
        """Close one session and open a fresh one (sessions that end mid-run)."""
        session = self._open.pop(0)
        self._remember(session, session.close())
        self.open()

    def run_in_background(self, rate_per_s: float, *, rotate_every: int = 60) -> None:
        def loop() -> None:
            n = 0
            while not self._stop.is_set():
                self.step()
                n += 1
                if rotate_every and n % rotate_every == 0:
                    self.rotate()
                self._stop.wait(1.0 / rate_per_s)

        self._thread = threading.Thread(target=loop, name="traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for session in self._open:
            self._remember(session, session.close())
        self._open.clear()
        left = self.client.flush(30)
        assert left == 0, f"{left} ingress record(s) never reached the broker"


@dataclass
class Accounting:
    """Where every sent ingress event ended up."""

    sent: int
    logged: int
    dlq: int
    shed: int
    lost: list[str]
    duplicated: list[str]
    dlq_reasons: Counter[str]
    log_events: int
    problems: list[str]

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "logged": self.logged,
            "dlq": self.dlq,
            "shed": self.shed,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "dlq_reasons": dict(self.dlq_reasons),
            "log_events": self.log_events,
            "log_problems": len(self.problems),
        }


def dlq_reason_tag(reason: str) -> str:
    """A DLQ reason without its per-record details (ids, numbers), for counting."""
    head = reason.split(":", maxsplit=1)[0]
    return " ".join(w for w in head.split()[:6] if not any(c.isdigit() for c in w))[:60]


def account(
    bootstrap: str,
    prefix: str,
    *,
    partitions: int,
    sent: dict[str, str],
    rows: list[LoggedEvent] | None = None,
) -> Accounting:
    """Match sent event ids against the log and the DLQ (sheds cover what they count)."""
    rows = rows if rows is not None else read_log(bootstrap, prefix, partitions=partitions)
    dlq_rows = read_dlq(bootstrap, prefix, partitions=partitions)
    codec = EventCodec()
    logged: Counter[str] = Counter(r.event.event_id for r in rows if r.event.event_id in sent)
    dlq_ids: set[str] = set()
    reasons: Counter[str] = Counter()
    for r in dlq_rows:
        p = r.event.payload
        assert isinstance(p, ev.DeadLetter), f"dlq[{r.partition}]@{r.offset} is {p!r}"
        reasons[dlq_reason_tag(p.reason)] += 1
        with contextlib.suppress(CodecError):
            if p.original_bytes:
                dlq_ids.add(codec.decode(p.original_bytes).event_id)
    shed_by_session: Counter[str] = Counter()
    for r in rows:
        if isinstance(r.event.payload, ev.Shed) and r.event.payload.lane is not ev.Lane.CONTROL:
            shed_by_session[r.event.session_id] += r.event.payload.shed_count
    missing: dict[str, list[str]] = defaultdict(list)
    for eid, sid in sent.items():
        if eid not in logged and eid not in dlq_ids:
            missing[sid].append(eid)
    lost = [e for sid, ids in missing.items() for e in ids[shed_by_session.get(sid, 0) :]]
    return Accounting(
        sent=len(sent),
        logged=len(logged),
        dlq=len(dlq_rows),
        shed=sum(shed_by_session.values()),
        lost=lost,
        duplicated=[e for e, n in logged.items() if n > 1],
        dlq_reasons=reasons,
        log_events=len(rows),
        problems=check_log(rows),
    )


def verify(
    bootstrap: str, prefix: str, *, partitions: int, sent: dict[str, str], settle_s: float = 30.0
) -> Accounting:
    """Wait until every sent event is accounted for, then check the log and replay it."""
    from replay import KafkaLogSource, replay

    last: list[Accounting] = []

    def settled() -> bool:
        last[:] = [account(bootstrap, prefix, partitions=partitions, sent=sent)]
        return not last[0].lost

    with contextlib.suppress(AssertionError):
        wait_for(settled, settle_s, "every sent event in the log or the DLQ", every=1.0)
    acc = last[0]
    assert acc.lost == [], f"{len(acc.lost)} ingress event(s) lost, e.g. {acc.lost[:5]}"
    assert acc.duplicated == [], f"recorded twice: {acc.duplicated[:5]}"
    assert acc.problems == [], "\n".join(acc.problems[:20])
    result = replay(KafkaLogSource(bootstrap, prefix, idle_timeout_s=5.0))
    assert result.ok, "\n".join(str(d.message) for d in result.divergences[:20])
    return acc
