"""Session snapshots re-use the frames of utterances they already held.

A flooded session holds up to a thousand utterances and is snapshotted at every
commit; the writer keeps each held utterance's encoded frame from the previous
snapshot instead of encoding it again. Property: whatever the hold/start/shed
order, the cached snapshot is byte-identical to one encoded from scratch, and it
restores to the same events.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.runtime.held import HeldUtterances
from streams.runtime.sessions import SessionSnapshot, SessionState
from tests.runtime.test_held_shedding import RULE, _event, last_snapshot, snapshot_writer


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(["hold", "hold", "next"]), max_size=12), min_size=1, max_size=8
    ),
    st.integers(min_value=1, max_value=6),
    st.booleans(),
)
def test_cached_frames_give_the_snapshot_encoded_from_scratch(
    commits: list[list[str]], limit: int, reuse_ids: bool
) -> None:
    session = SessionState(session_id="s", tenant_id="acme", partition=0, bundle_id="b")
    held = HeldUtterances(limit=limit, rule=RULE)
    cached, cached_sink = snapshot_writer()
    n = 0
    for ops in commits:  # each inner list is what happens between two commits
        for op in ops:
            if op == "hold":
                # A misbehaving client may reuse event ids: the cache must not mix them up.
                held.hold("s", _event(n, event_id=f"in-{n % 3}" if reuse_ids else None))
                n += 1
            else:
                held.next("s")
        cached.snapshot(session, pending=held.items("s"))
        fresh, fresh_sink = snapshot_writer()
        fresh.snapshot(session, pending=held.items("s"))
        assert last_snapshot(cached_sink) == last_snapshot(fresh_sink)
        restored = cached.pending_of(SessionSnapshot.from_bytes(last_snapshot(cached_sink)))
        assert [e.event_id for e in restored] == [e.event_id for e in held.items("s")]
        assert restored == list(held.items("s"))
