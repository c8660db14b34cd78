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
from streams.runtime.sessions import SessionKey
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
        self._held: dict[SessionKey, deque[ev.Envelope]] = {}
        self._bytes: dict[SessionKey, int] = {}  # session -> size_of() sum of what it holds
        self._shed: dict[SessionKey, int] = {}  # session -> dropped since the last take_sheds()

    def hold(self, key: SessionKey, event: ev.Envelope) -> str | None:
        """Hold ``event``; returns the refusal reason when it cannot be held (no shed rule,
        or the item alone is larger than the byte limit)."""
        size = size_of(event)
        queue = self._held.setdefault(key, deque())
        held = self._bytes.get(key, 0)
        full = len(queue) >= self.limit or held + size > self.limit_bytes
        if full and (self.rule is None or size > self.limit_bytes):
            if not queue:
                self._held.pop(key, None)
            return REFUSED
        while queue and (len(queue) >= self.limit or held + size > self.limit_bytes):
            held -= size_of(queue.popleft())
            self._shed[key] = self._shed.get(key, 0) + 1
        queue.append(event)
        self._bytes[key] = held + size
        return None

    def next(self, key: SessionKey) -> ev.Envelope | None:
        """The oldest held event of the session, removed; None when none is held."""
        queue = self._held.get(key)
        if not queue:
            self._held.pop(key, None)
            self._bytes.pop(key, None)
            return None
        event = queue.popleft()
        self._bytes[key] -= size_of(event)
        return event

    def items(self, key: SessionKey) -> Iterable[ev.Envelope]:
        """What the session holds, oldest first (for its changelog snapshot)."""
        return tuple(self._held.get(key, ()))

    def restore(self, key: SessionKey, events: Iterable[ev.Envelope]) -> None:
        queue = deque(events)
        if queue:
            self._held[key] = queue
            self._bytes[key] = sum(size_of(e) for e in queue)

    def release(self, key: SessionKey) -> tuple[ev.Envelope, ...]:
        """Take everything the session holds (it closed: the caller dead-letters them)."""
        self._bytes.pop(key, None)
        return tuple(self._held.pop(key, ()))

    def forget(self, key: SessionKey) -> None:
        """Drop the session's state without a trace (its partition moved to another owner,
        which restores the held items from the snapshot and re-reads what was not committed)."""
        self._held.pop(key, None)
        self._bytes.pop(key, None)
        self._shed.pop(key, None)

    def take_sheds(self, key: SessionKey | None = None) -> Iterator[tuple[SessionKey, int]]:
        """(session, count) of drops not yet logged, in first-drop order; clears them."""
        if key is not None:
            count = self._shed.pop(key, 0)
            if count:
                yield key, count
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
