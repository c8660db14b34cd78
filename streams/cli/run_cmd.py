"""``rspp run``, ``rspp dlq show`` and ``rspp produce``: operate the stream runtime."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from streams.cluster import resolve_bootstrap
from streams.output import console, emit_json, err_console

if TYPE_CHECKING:
    from pipelines.models.compat import VersionSkewPolicy
    from pipelines.models.resolved import PipelineBundle

__all__ = ["register"]

PrefixOpt = Annotated[
    str, typer.Option("--prefix", "-p", help="Deployment prefix (topics P.control, P.data, …).")
]
BootstrapOpt = Annotated[
    str | None,
    typer.Option(
        "--bootstrap", help="Kafka bootstrap servers (default RSPP_BOOTSTRAP or the local broker)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

dlq_app = typer.Typer(
    help="Inspect the dead-letter topic P.dlq: bad input with its reason and original bytes."
)


def register(app: typer.Typer) -> None:
    app.command(name="run")(run)
    app.command(name="produce")(produce)
    app.add_typer(dlq_app, name="dlq")


def _skew_policy(policy_path: Path | None) -> VersionSkewPolicy:
    from pipelines.loader import load_artifact
    from pipelines.models.compat import VersionSkewPolicy
    from streams.config import repo_root

    path = policy_path or repo_root() / "pipelines" / "compat" / "version_skew_policy_v1.yaml"
    loaded, issues = load_artifact(path)
    if loaded is None or not isinstance(loaded.model, VersionSkewPolicy):
        detail = issues[0] if issues else "not a VersionSkewPolicy"
        raise typer.BadParameter(f"{path}: {detail}")
    return loaded.model


def _skew_gate(policy: VersionSkewPolicy) -> Callable[[PipelineBundle], str | None]:
    """The version-skew check for process start and session open (docs/architecture.md, invariant 15)."""
    from pipelines.skew import check_skew
    from streams.abi.version import ABI_VERSION

    def gate(bundle: PipelineBundle) -> str | None:
        problems = check_skew(policy, bundle, runtime_abi=ABI_VERSION, today=dt.date.today())
        return "; ".join(problems) or None

    return gate


def run(
    prefix: PrefixOpt,
    bundle: Annotated[
        Path, typer.Option("--bundle", "-b", help="Bundle JSON file (see `rspp bundle build`).")
    ],
    group: Annotated[
        str | None, typer.Option("--group", help="Consumer group (default rspp-<prefix>).")
    ] = None,
    processor_id: Annotated[
        str | None, typer.Option("--id", help="Lease holder name (default host-pid-random).")
    ] = None,
    commit_ms: Annotated[
        int, typer.Option("--commit-ms", help="Transaction commit interval.")
    ] = 100,
    skew_policy: Annotated[
        Path | None,
        typer.Option("--skew-policy", help="Version-skew policy (default pipelines/compat/...)."),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply-topics/--no-apply-topics", help="Create missing topics first.")
    ] = True,
    partitions: Annotated[
        int, typer.Option("--partitions", help="Partitions when creating topics.")
    ] = 6,
    session_timeout_ms: Annotated[
        int | None,
        typer.Option(
            "--session-timeout-ms",
            min=1,
            help="Consumer group session timeout: how long a silent processor keeps its "
            "partitions (the broker's group.min/max.session.timeout.ms bound it).",
        ),
    ] = None,
    static: Annotated[
        bool,
        typer.Option(
            "--static/--no-static",
            help="Static group membership with --id as group.instance.id: a restart with the "
            "same --id takes its partitions back without a rebalance.",
        ),
    ] = False,
    close_grace_ms: Annotated[
        int,
        typer.Option(
            "--close-grace-ms",
            min=0,
            help="How long a SESSION_CLOSE waits, once the session's data partition is caught "
            "up, for data the service sent before it (control overtakes data; the close must "
            "not). 0 applies a close as soon as the data partition is caught up.",
        ),
    ] = 200,
    close_max_hold_ms: Annotated[
        int,
        typer.Option(
            "--close-max-hold-ms",
            min=0,
            help="Upper bound on that wait while the data partition is still backed up.",
        ),
    ] = 5_000,
    tenants: Annotated[
        list[str] | None,
        typer.Option(
            "--tenant",
            "-t",
            help="Multi-tenant deployment: consume this tenant's own lanes P.<tenant>.<lane> "
            "(repeat for each tenant). A record's tenant is then its topic's; a body that "
            "names another tenant is dead-lettered. Without it the lanes P.<lane> are shared.",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus metrics on this port (/metrics; 0: any free port). Off by "
            "default. Traces follow the standard OTEL_* variables (e.g. "
            "OTEL_EXPORTER_OTLP_ENDPOINT).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address the metrics endpoint binds.")
    ] = "0.0.0.0",
    bootstrap: BootstrapOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a processor until SIGTERM/SIGINT, then drain (finish or abort open turns), commit and leave.

    Scale out by starting more `rspp run` with the same --prefix (and --group): Kafka splits the
    partitions between them; sessions move with their partitions and resume from the changelog.
    """
    from pipelines.bundles import read_bundle
    from streams.runtime.closing import CloseBarrier
    from streams.runtime.errors import ProcessorError
    from streams.runtime.processor import ProcessorConfig
    from streams.runtime.supervisor import supervise
    from streams.topics import TopicLayout, apply_topics

    if static and processor_id is None:
        raise typer.BadParameter("--static needs --id (the group.instance.id)")
    loaded = read_bundle(bundle)
    policy = _skew_policy(skew_policy)
    gate = _skew_gate(policy)
    problem = gate(loaded)
    if problem:
        raise ProcessorError(
            f"bundle {loaded.bundle_id} refused by the version-skew policy: {problem}"
        )
    layout = TopicLayout(prefix=prefix, partitions=partitions)  # checked before connecting
    address = resolve_bootstrap(bootstrap, timeout=30)
    layout = TopicLayout(prefix=prefix, partitions=partitions, tenants=tuple(tenants or ()))
    if apply:
        apply_topics(address, layout)
    from streams.extensions import ExtensionRegistry
    from streams.observability.wiring import Operations

    extensions = ExtensionRegistry.from_directory()
    ops = Operations(
        bootstrap=address,
        prefix=prefix,
        group=group or f"rspp-{prefix}",
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        extension_restarts=lambda: extensions.restarts,
    )
    config = ProcessorConfig(
        bootstrap=address,
        prefix=prefix,
        bundle=loaded,
        tenants=layout.tenants,
        group_id=group,
        processor_id=processor_id,
        commit_interval_ms=commit_ms,
        session_gate=gate,
        skew_policy=policy,  # also the window for ingress schema versions
        session_timeout_ms=session_timeout_ms,
        static_membership=static,
        close_barrier=CloseBarrier(grace_ms=close_grace_ms, max_hold_ms=close_max_hold_ms),
        # Built-ins plus the extensions of pipelines/extensions/, pinned by the bundle's digests;
        # external ones run isolated in worker pools. A refused extension fails its turns, not us.
        registry=extensions.node_registry(bundle=loaded),
        observer=ops.observer,
    )
    # One holder name for every restart: the same transactional id fences and aborts
    # whatever a previous incarnation left open.
    config = dataclasses.replace(config, processor_id=config.holder)
    if not json_out:
        err_console.print(
            f"rspp run: prefix [bold]{prefix}[/] bundle {loaded.bundle_id} group {config.group} "
            f"holder {config.processor_id} @ {address}"
        )
    if ops.server is not None:
        # Said even with --json (stderr): a scraper needs the port when it was 0.
        err_console.print(f"rspp run: metrics on {ops.server.url}")
    started = time.monotonic()
    try:
        processor, totals = asyncio.run(supervise(config, notify=err_console.print))
    finally:
        ops.close()
        extensions.close()
    stats = totals.stats
    summary = {
        "holder": processor.holder,
        "seconds": round(time.monotonic() - started, 3),
        "restarts": totals.restarts,
        "events_in": stats.events_in,
        "turns_opened": stats.turns_opened,
        "turns_committed": stats.turns_committed,
        "turns_aborted": stats.turns_aborted,
        "outputs": stats.outputs,
        "cancels": stats.cancels,
        "shed": stats.shed,
        "dlq": totals.dlq,
        "dlq_reasons": totals.dlq_reasons,
        "transactions": totals.transactions,
        "records_written": totals.records,
        "leases": processor.leases.partitions,
    }
    if json_out:
        emit_json(summary)
    else:
        err_console.print(
            "rspp run: stopped "
            + ", ".join(f"{k}={v}" for k, v in summary.items() if k != "holder")
        )


@dlq_app.command("show")
def dlq_show(
    prefix: PrefixOpt,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="Show at most this many records.")
    ] = 50,
    bootstrap: BootstrapOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List dead-lettered records: reason, original topic/partition/offset, size."""
    from streams.abi.codec import EventCodec
    from streams.abi.events import DeadLetter
    from streams.runtime.changelog import read_to_end
    from streams.topics import OUTPUT_MAX_RECORD_BYTES, TopicLayout, describe_topics

    layout = TopicLayout(prefix=prefix, partitions=1)  # a bad prefix fails before connecting
    address = resolve_bootstrap(bootstrap, timeout=15)
    dlq = next(r for r in describe_topics(address, layout) if r.name == layout.dlq)
    if not dlq.exists:
        raise typer.BadParameter(f"topic {layout.dlq} does not exist")
    codec = EventCodec(max_frame_bytes=OUTPUT_MAX_RECORD_BYTES)
    rows = []
    for msg in read_to_end(address, layout.dlq, range(dlq.partitions or 0)):
        event = codec.decode(msg.value())
        p = event.payload
        if isinstance(p, DeadLetter):
            rows.append(
                {
                    "dlq_offset": f"{msg.partition()}:{msg.offset()}",
                    "reason": p.reason,
                    "original": f"{p.original_topic}[{p.original_partition}]@{p.original_offset}",
                    "session": event.session_id,
                    "bytes": len(p.original_bytes or b""),
                }
            )
        if len(rows) >= limit:
            break
    if json_out:
        emit_json({"prefix": prefix, "records": rows})
        return
    table = Table(title=f"{len(rows)} dead-lettered record(s) in {layout.dlq}")
    for col in ("dlq offset", "reason", "original", "session", "bytes"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    console.print(table)


def produce(
    prefix: PrefixOpt,
    session: Annotated[str, typer.Option("--session", "-s", help="Session id.")],
    text: Annotated[
        list[str], typer.Option("--text", "-t", help="Final transcript(s) to send, one turn each.")
    ] = [],  # noqa: B006
    say: Annotated[
        list[str],
        typer.Option("--say", help="Utterance(s) to speak with espeak-ng and stream as audio."),
    ] = [],  # noqa: B006
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Barge in (cancel) as soon as the last reply starts.")
    ] = False,
    close: Annotated[
        bool, typer.Option("--close/--no-close", help="Close the session at the end.")
    ] = True,
    wait: Annotated[
        float,
        typer.Option("--wait", help="Seconds to wait for each reply in the log (0: don't wait)."),
    ] = 30.0,
    partitions: Annotated[
        int, typer.Option("--partitions", help="Partitions of the prefix's topics.")
    ] = 6,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id.")] = "default",
    tenant_lanes: Annotated[
        bool,
        typer.Option(
            "--tenant-lanes",
            help="The deployment is multi-tenant: write the tenant's own lanes P.<tenant>.<lane>.",
        ),
    ] = False,
    bootstrap: BootstrapOpt = None,
) -> None:
    """Act as a voice service: open a session, send utterances, show the replies from the log.

    Each --text (a final transcript) or --say (speech synthesised with espeak-ng, streamed as
    20 ms PCM frames) is one turn; the command waits for each turn to close before the next,
    like a caller listening to the answer, then closes the session.
    """
    import time as _time

    from streams.adapters import LogFollower
    from streams.client import VoiceClient
    from streams.nodes import synthesize_pcm16
    from streams.topics import TopicLayout

    TopicLayout(prefix=prefix, partitions=partitions)  # a bad prefix fails before connecting
    address = resolve_bootstrap(bootstrap, timeout=15)
    client = VoiceClient(
        bootstrap=address, prefix=prefix, tenant_id=tenant, tenant_lanes=tenant_lanes
    )
    follower = (
        # Only this command's session matters: skip older history on a long-lived prefix.
        LogFollower(
            bootstrap=address,
            prefix=prefix,
            partitions=partitions,
            since_ms=int((_time.time() - 30) * 1000),
        ).start()
        if wait > 0
        else None
    )
    handle = client.open_session(session)
    utterances = [("text", line) for line in text] + [("say", line) for line in say]
    try:
        for n, (kind, line) in enumerate(utterances):
            if kind == "text":
                handle.send_transcript(line, final=True)
            else:
                pcm = synthesize_pcm16(line)
                for i in range(0, len(pcm), 640):
                    handle.send_audio(pcm[i : i + 640])
                handle.end_utterance()
            client.flush()
            if follower is None:
                continue
            view = follower.session(session)
            deadline = _time.monotonic() + wait
            barge = cancel and n == len(utterances) - 1
            while _time.monotonic() < deadline:
                turns = list(view.turns.values())
                turn = turns[n] if len(turns) > n else None
                if turn is not None and barge and turn.first_audio_at is not None:
                    handle.cancel()
                    client.flush()
                    barge = False
                if turn is not None and turn.closed_at is not None:
                    outcome = f"aborted ({turn.abort_reason})" if turn.abort_reason else "committed"
                    console.print(
                        f"{turn.turn_id}: heard {turn.transcript or line!r} -> reply {turn.reply!r}: {outcome}"
                    )
                    break
                _time.sleep(0.05)
            else:
                console.print(
                    f"[yellow]no reply to {line!r} within {wait:g}s (is `rspp run --prefix {prefix}` up?)[/]"
                )
        if cancel and follower is None:
            handle.cancel()
        if close:
            handle.close()
        left = client.flush()
    finally:
        if follower is not None:
            follower.stop()
    console.print(
        f"sent {handle.sent} event(s) for session {session}"
        + (f" ({left} undelivered)" if left else "")
    )
