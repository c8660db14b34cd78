"""A log in which two tenants use the same session id (and turn ids) on one partition.

acme and globex both open ``call-1`` and both run turn ``t1``, interleaved so that a
report joining or grouping on the session id alone would mix them: acme's ``t1`` is
cancelled, and globex's ``t1`` then accepts output and aborts before acme's abort
lands. Node outputs carry a latency that tells the tenants apart (acme 1 ms, globex
9 ms); globex sheds once. The dead letters are filed by the processor under a tenant
(their envelope) while their original headers claim another.
"""

from __future__ import annotations

import dataclasses

from pipelines.bundles import read_bundle
from replay.testing import LogRecorder
from streams.abi.events import DeadLetter, Envelope, Header, Lane, NodeOutput, Shed
from tests.replay import gen_fixtures as gen

PREFIX = "golden"
SESSION = "call-1"
TENANTS = ("acme", "globex")
LATENCY_US = {"acme": 1_000, "globex": 9_000}
SYSTEM = "__system__"


def shared_session_log() -> list[Envelope]:
    rec = LogRecorder(prefix=PREFIX, tenant="acme", bundle=read_bundle(gen.BUNDLE))
    rec.grant(1, "proc-a")

    def as_(tenant: str) -> LogRecorder:
        rec.tenant = tenant  # the recorder stamps its tenant on every event it appends
        return rec

    as_("acme").open_session(SESSION)
    as_("globex").open_session(SESSION)
    a1 = as_("acme").open_turn(SESSION, "t1", trigger="final_transcript")
    heard = rec.text_input(SESSION, a1, "what time is it")
    a_out = rec.outputs(SESSION, a1, heard)
    rec.accept(SESSION, a1, a_out["tts"][0], playback=True)
    a_cancel = rec.cancel(SESSION, a1)
    g1 = as_("globex").open_turn(SESSION, "t1", trigger="final_transcript")
    heard = rec.text_input(SESSION, g1, "play some music")
    g_out = rec.outputs(SESSION, g1, heard)
    rec.accept(SESSION, g1, g_out["tts"][0], playback=True)  # after acme's cancel, same ids
    rec.abort(SESSION, g1, "deadline")
    as_("acme").abort(SESSION, a1, "cancelled: barge-in", cause=a_cancel)
    g2 = as_("globex").open_turn(SESSION, "t2", trigger="final_transcript")
    heard = rec.text_input(SESSION, g2, "turn on the kitchen lights")
    g_out = rec.outputs(SESSION, g2, heard, tts_chunks=1)
    rec.accept(SESSION, g2, g_out["tts"][0])
    rec.commit(SESSION, g2, outputs=1)
    rec.append(Shed(reason="over budget", rule="data-rate", defaulting_source="client",
                    lane=Lane.DATA, shed_count=3), session_id=SESSION)
    as_("globex").close_session(SESSION)
    as_("acme").close_session(SESSION)
    return [_with_latency(e) for e in rec.events]


def _with_latency(env: Envelope) -> Envelope:
    if not isinstance(env.payload, NodeOutput):
        return env
    payload = dataclasses.replace(env.payload, latency_us=LATENCY_US[env.tenant_id])
    return dataclasses.replace(env, payload=payload)


def dead_letter(*, tenant: str, session: str, claims: tuple[str, str], offset: int) -> Envelope:
    """A dead letter the processor filed under (``tenant``, ``session``) whose original
    record's headers claimed (tenant, session) ``claims``."""
    headers = (Header(key="rspp_tenant", value=claims[0].encode()),
               Header(key="rspp_session", value=claims[1].encode()),
               Header(key="rspp_lane", value=b"data"))
    return Envelope.new(
        DeadLetter(reason=f"test dead letter {offset}", original_topic=f"{PREFIX}.data",
                   original_partition=0, original_offset=offset, original_bytes=b"\x00garbage",
                   original_headers=headers),
        tenant_id=tenant, session_id=session, seq=offset)


def dead_letters() -> list[Envelope]:
    return [
        dead_letter(tenant="globex", session=SESSION, claims=("acme", SESSION), offset=7),
        dead_letter(tenant="acme", session=SESSION, claims=("globex", "g-9"), offset=8),
        dead_letter(tenant=SYSTEM, session="__unrouted__", claims=("acme", SESSION), offset=9),
    ]
