"""Node reports → log events: outputs, egress acceptance, fallbacks, node errors.

Egress fencing lives here: a sink output becomes ``OUTPUT_ACCEPTED`` (and the
turn's first audio ``PLAYBACK_STARTED``) only when the session's cancel fence
does not cover its turn or node. Reports of closed turns never get here.
"""

from __future__ import annotations

import time

from streams.abi import events as ev
from streams.nodes import (
    AudioOut,
    FallbackDecision,
    NodeEnded,
    OutputReport,
    ReplyText,
    TranscriptText,
)
from streams.runtime.sessions import SessionState
from streams.runtime.stats import EngineStats
from streams.runtime.turns import ActiveTurn
from streams.runtime.writer import EventWriter

__all__ = ["OutputRecorder"]


class OutputRecorder:
    def __init__(self, *, writer: EventWriter, stats: EngineStats) -> None:
        self.writer = writer
        self.stats = stats

    def record(
        self,
        session: SessionState,
        active: ActiveTurn,
        report: OutputReport | FallbackDecision | NodeEnded,
    ) -> None:
        if isinstance(report, OutputReport):
            self._output(session, active, report)
        elif isinstance(report, FallbackDecision):
            self._fallback(session, active, report)
        elif report.status == "failed":
            kind = (
                ev.NodeErrorKind.TIMEOUT
                if "timeout" in (report.error or "").lower()
                else ev.NodeErrorKind.PROVIDER
            )
            self.writer.log(
                session,
                ev.NodeError(
                    error_kind=kind,
                    message=(report.error or "failed")[:500],
                    fallback=ev.FallbackAction.ABORT_TURN,
                ),
                turn=active.stamp,
                node_id=report.node_id,
                causation_id=active.last_event_by_node.get(report.node_id, active.last_input_event),
            )

    def _fallback(
        self, session: SessionState, active: ActiveTurn, report: FallbackDecision
    ) -> None:
        if report.to_provider == report.from_provider:
            action = ev.FallbackAction.RETRY
        elif report.to_provider in (None, "degrade"):
            action = ev.FallbackAction.DEGRADE
        else:
            action = ev.FallbackAction.FALLBACK
        self.writer.log(
            session,
            ev.FallbackDecision(
                action=action,
                what=f"{report.node_id}.provider",
                from_value=report.from_provider,
                to_value=report.to_provider or "none",
                reason=report.reason,
            ),
            turn=active.stamp,
            node_id=report.node_id,
            causation_id=active.last_input_event,
        )

    def _output(self, session: SessionState, active: ActiveTurn, report: OutputReport) -> None:
        item = report.item
        node = report.node_id
        upstream = [e.source for e in active.plan.edges if e.target == node]
        causation = next(
            (active.last_event_by_node[u] for u in upstream if u in active.last_event_by_node), None
        )
        causation = causation or active.last_input_event
        # Time spent on this output: from taking the input, or from the node's previous
        # output of the same input (streaming nodes emit many outputs per input).
        since = max(report.start_ns, active.last_output_ns.get(node, 0))
        latency_us = max(0, (report.end_ns - since) // 1000)
        active.last_output_ns[node] = report.end_ns
        if isinstance(item, TranscriptText):
            payload = ev.NodeOutput(
                output_seq=report.index,
                kind="transcript" if node == active.graph.entry else "text",
                text=item.text,
                content_type="text/plain",
                final=item.final,
                latency_us=latency_us,
            )
        elif isinstance(item, ReplyText):
            payload = ev.NodeOutput(
                output_seq=report.index,
                kind="reply",
                text=item.text,
                content_type="text/plain",
                final=True,
                latency_us=latency_us,
            )
        elif isinstance(item, AudioOut):
            payload = ev.NodeOutput(
                output_seq=report.index,
                kind="audio",
                data=item.pcm,
                content_type=f"audio/pcm16;rate={item.sample_rate}",
                final=item.final,
                latency_us=latency_us,
            )
        else:
            return  # an entry-side item echoed by a pass-through node: not an output
        out = self.writer.log(
            session, payload, turn=active.stamp, node_id=node, causation_id=causation
        )
        active.last_event_by_node[node] = out.event_id
        active.outputs += 1
        self.stats.outputs += 1
        if node != active.graph.sink or session.fence.blocks(
            turn_id=active.state.turn_id, node_id=node
        ):
            return
        accepted = self.writer.log(
            session,
            ev.OutputAccepted(output_event_id=out.event_id),
            turn=active.stamp,
            node_id=node,
            causation_id=out.event_id,
        )
        active.accepted += 1
        if active.first_output_ns is None:
            active.first_output_ns = time.monotonic_ns()
        if payload.kind == "audio" and not active.playback_started:
            self.writer.log(
                session,
                ev.PlaybackStarted(output_event_id=out.event_id, offset_ms=0),
                turn=active.stamp,
                node_id=node,
                causation_id=accepted.event_id,
            )
            active.playback_started = True
