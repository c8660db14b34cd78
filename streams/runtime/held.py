"""Utterances a session sends while its previous turn still responds.

They wait, per session, in a bounded buffer and start as the next turn once the
current one closes. When the buffer is full the bundle decides: under a
shedding profile (``low_latency`` with ``drop_oldest``) the oldest held item is
dropped and counted, and the engine logs the count as a SHED event naming the
rule and where it came from; otherwise the newest item is refused (the caller
dead-letters it with the reason). Both keep "nothing lost silently": every
ingress record is in the log, in the DLQ or counted by a SHED event.

Which items are dropped depends only on the order items are held and started
(oldest first), so the same input order gives the same shed set.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipelines.models.resolved import PipelineBundle
from streams.abi import events as ev
from streams.lanes import ShedPolicy
from streams.topics import Lane

__all__ = ["HeldUtterances", "OverflowRule", "overflow_rule", "shed_policy", "size_of"]

# ~20 s of 20 ms audio frames: enough for one long utterance behind a slow reply.
DEFAULT_LIMIT = 1000
# The held items ride in the session's changelog snapshot (base64, 4/3 larger), which must
# stay one Kafka record (1 MB by default): 1000 frames of 20 ms 16 kHz audio alone are ~1 MB.
DEFAULT_LIMIT_BYTES = 512 * 1024
_ENVELOPE_BYTES = 256  # ids, timestamps, correlation and framing around the payload
REFUSED = "next utterance buffer full while the previous turn responds"


@dataclass(frozen=True, slots=True, kw_only=True)
class OverflowRule:
    """The shed rule a full buffer applies, as the SHED event names it."""

    rule: str
    defaulting_source: str


def shed_policy(bundle: PipelineBundle) -> ShedPolicy | None:
    """The bundle's shed rule for the DATA/TELEMETRY lanes, or None when it must not shed
    (``block`` mode, or not the low-latency profile). One derivation for the lane queues
    and the held utterances."""
    spec = bundle.resolved_spec
    if spec.mode.value != "low_latency" or spec.shedding.mode.value == "block":
        return None
    order = tuple(Lane(x) for x in spec.shedding.shed_order.value if x in ("data", "telemetry"))
    return ShedPolicy(
        rule=f"{spec.mode.value}/{spec.shedding.mode.value}",
        defaulting_source=spec.shedding.mode.source,
        lanes=order or (Lane.TELEMETRY, Lane.DATA),
    )


def overflow_rule(bundle: PipelineBundle) -> OverflowRule | None:
    """The bundle's shed rule for held utterances: its lane rule when DATA may be shed."""
    policy = shed_policy(bundle)
    if policy is None or Lane.DATA not in policy.lanes:
        return None
    return OverflowRule(rule=policy.rule, defaulting_source=policy.defaulting_source)


class HeldUtterances:
    """Per-session bounded FIFO of held ingress events plus the shed counts not yet logged."""

    def __init__(
        self,
        *,
        limit: int = DEFAULT_LIMIT,
        limit_bytes: int = DEFAULT_LIMIT_BYTES,
        rule: OverflowRule | None = None,
    ) -> None:
        if limit < 1 or limit_bytes < 1:
            raise ValueError("the held-utterance limits must be at least 1")
        self.limit = limit
        self.limit_bytes = limit_bytes
        self.rule = rule
        self._held: dict[str, deque[ev.Envelope]] = {}
        self._bytes: dict[str, int] = {}  # session -> size_of() sum of what it holds
        self._shed: dict[str, int] = {}  # session -> dropped since the last take_sheds()

    def hold(self, session_id: str, event: ev.Envelope) -> str | None:
        """Hold ``event``; returns the refusal reason when it cannot be held (no shed rule,
        or the item alone is larger than the byte limit)."""
        size = size_of(event)
        queue = self._held.setdefault(session_id, deque())
        held = self._bytes.get(session_id, 0)
        full = len(queue) >= self.limit or held + size > self.limit_bytes
        if full and (self.rule is None or size > self.limit_bytes):
            if not queue:
                self._held.pop(session_id, None)
            return REFUSED
        while queue and (len(queue) >= self.limit or held + size > self.limit_bytes):
            held -= size_of(queue.popleft())
            self._shed[session_id] = self._shed.get(session_id, 0) + 1
        queue.append(event)
        self._bytes[session_id] = held + size
        return None

    def next(self, session_id: str) -> ev.Envelope | None:
        """The oldest held event of the session, removed; None when none is held."""
        queue = self._held.get(session_id)
        if not queue:
            self._held.pop(session_id, None)
            self._bytes.pop(session_id, None)
            return None
        event = queue.popleft()
        self._bytes[session_id] -= size_of(event)
        return event

    def items(self, session_id: str) -> Iterable[ev.Envelope]:
        """What the session holds, oldest first (for its changelog snapshot)."""
        return tuple(self._held.get(session_id, ()))

    def restore(self, session_id: str, events: Iterable[ev.Envelope]) -> None:
        queue = deque(events)
        if queue:
            self._held[session_id] = queue
            self._bytes[session_id] = sum(size_of(e) for e in queue)

    def release(self, session_id: str) -> tuple[ev.Envelope, ...]:
        """Take everything the session holds (it closed: the caller dead-letters them)."""
        self._bytes.pop(session_id, None)
        return tuple(self._held.pop(session_id, ()))

    def forget(self, session_id: str) -> None:
        """Drop the session's state without a trace (its partition moved to another owner,
        which restores the held items from the snapshot and re-reads what was not committed)."""
        self._held.pop(session_id, None)
        self._bytes.pop(session_id, None)
        self._shed.pop(session_id, None)

    def take_sheds(self, session_id: str | None = None) -> Iterator[tuple[str, int]]:
        """(session, count) of drops not yet logged, in first-drop order; clears them."""
        if session_id is not None:
            count = self._shed.pop(session_id, 0)
            if count:
                yield session_id, count
            return
        while self._shed:
            sid = next(iter(self._shed))
            yield sid, self._shed.pop(sid)


def size_of(event: ev.Envelope) -> int:
    """About how many bytes ``event`` takes encoded: its payload plus the envelope."""
    p = event.payload
    if isinstance(p, ev.AudioChunk):
        return len(p.audio) + _ENVELOPE_BYTES
    if isinstance(p, ev.Transcript):
        return len(p.text.encode()) + _ENVELOPE_BYTES
    return _ENVELOPE_BYTES
