"""``rspp demo``: the whole product on real parts, in one command.

Starts (or reuses) the local broker, applies a fresh prefix, loads the example
bundle, runs a processor, and has N simulated callers speak (espeak-ng audio,
20 ms frames at real-time pace) through the reference adapter, some barging in
over the reply. Then it checks the log and reports what a user and an auditor
would want to know.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from streams.cluster import resolve_bootstrap
from streams.output import console, emit_json, err_console

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def demo(
    sessions: Annotated[
        int, typer.Option("--sessions", "-n", help="Concurrent simulated callers.")
    ] = 8,
    turns: Annotated[int, typer.Option("--turns", help="Utterances per caller.")] = 3,
    fast: Annotated[
        bool,
        typer.Option("--fast", help="Stream audio as fast as possible, not at real-time pace."),
    ] = False,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Topic prefix (default: a fresh demo-<id>).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where WAV replies and the export go.")] = Path(
        "out"
    ),
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable summary instead of tables.")
    ] = False,
) -> None:
    """Run the main job end to end: spoken audio in, barge-in, exactly-once log, checks, report."""
    from streams.demo import DemoOptions, load_scenario, run_demo
    from streams.demo.display import live_table

    bootstrap = resolve_bootstrap(start_local=True)
    options = DemoOptions(sessions=sessions, turns=turns, fast=fast, prefix=prefix, out_dir=out)
    scenario = load_scenario()
    if not json_out:
        err_console.print(
            f"rspp demo: broker {bootstrap}; {sessions} callers x {turns} utterances "
            f"({'fast' if fast else 'real-time'}); bundle {options.bundle.name}"
        )
    live = sys.stdout.isatty() and not json_out
    if live:
        with Live(console=console, refresh_per_second=4, transient=False) as view:
            result = run_demo(
                options,
                bootstrap=bootstrap,
                scenario=scenario,
                on_tick=lambda f: view.update(live_table(f, title="RSPP demo: live sessions")),
            )
    else:
        result = run_demo(options, bootstrap=bootstrap, scenario=scenario)
    summary = _summarise(result)
    if json_out:
        emit_json(summary)
    else:
        _print_summary(summary)
    if summary["problems"]:
        raise typer.Exit(1)


def _summarise(result: Any) -> dict[str, Any]:
    from replay import ContainerLogSource, KafkaLogSource, export_log, replay
    from replay.gates import DEFAULT_MANIFEST, evaluate_gates, load_gates

    # The fixture a replay job would keep: export the recorded turns, then replay them,
    # re-simulating the deterministic nodes on the recorded inputs. Replay is the one
    # rulebook of a sound log (lifecycle, epochs, causation, fencing, duplicates).
    problems: list[str] = []
    export_dir = result.out_dir / "export"
    manifest = export_log(
        KafkaLogSource(result.bootstrap, result.prefix),
        export_dir,
        prefix=result.prefix,
        codec="zstd",
    )
    replayed = replay(ContainerLogSource(export_dir), resimulate=True)
    problems += [str(d) for d in replayed.divergences]
    problems += [f"export: {problem}" for problem in replayed.integrity]
    gates = evaluate_gates(load_gates(DEFAULT_MANIFEST), export_dir)
    problems += [
        f"gate {g.gate.id} failed: {g.gate.metric} = {g.value} ({g.detail})"
        for g in gates
        if not g.passed
    ]
    problems += [
        f"{turn}: heard reply {heard!r}, expected {want!r}"
        for turn, heard, want in result.mismatched_replies
    ]
    # The audit view of the same export: what an auditor would query.
    from replay.audit import AuditStore

    audit_db = result.out_dir / "audit.duckdb"
    audit = AuditStore(audit_db)
    audit.load_export(export_dir)
    node_latency = audit.report("node_latency")
    cancels = audit.report("cancels")
    first_audio = [v for c in result.callers for v in c.first_audio_ms]
    fences = [v for c in result.callers for v in c.fence_ms]
    return {
        "prefix": result.prefix,
        "seconds": round(result.seconds, 1),
        "log_events": replayed.events,
        "turns_committed": result.turns_committed,
        "turns_aborted": result.turns_aborted,
        "barge_ins": sum(c.barge_ins for c in result.callers),
        "first_audio_ms": {"p50": _pct(first_audio, 0.5), "p99": _pct(first_audio, 0.99)},
        "cancel_to_abort_ms": {"p50": _pct(fences, 0.5), "p99": _pct(fences, 0.99)},
        "node_latency_ms": {
            r["node_id"]: {
                "p50": r["p50_us"] / 1000.0,
                "p99": r["p99_us"] / 1000.0,
                "outputs": r["outputs"],
            }
            for r in node_latency
        },
        "cancels": [
            {
                "turn": c["turn_id"],
                "cancel_to_abort_ms": (c["cancel_to_abort_us"] or 0) / 1000.0,
                "egress_after_cancel": c["egress_after_cancel"],
            }
            for c in cancels
        ],
        "audit_db": str(audit_db),
        "export": {
            "dir": str(export_dir),
            "files": len(manifest.get("files", [])),
            "sessions": len(manifest.get("sessions", [])),
        },
        "replay": {
            "mode": replayed.mode,
            "turns": len(replayed.turns),
            "events": replayed.events,
            "divergences": len(replayed.divergences),
            "events_per_s": round(replayed.events_per_second),
        },
        "gates": [g.as_dict() for g in gates],
        "wav_files": [str(p) for p in result.wav_files],
        "out_dir": str(result.out_dir),
        "problems": problems,
    }


def _print_summary(s: dict[str, Any]) -> None:
    table = Table(title=f"RSPP demo {s['prefix']}: {s['seconds']} s, {s['log_events']} log events")
    table.add_column("what")
    table.add_column("value")
    table.add_row("turns committed / aborted", f"{s['turns_committed']} / {s['turns_aborted']}")
    table.add_row("barge-ins (cancel on the control lane)", str(s["barge_ins"]))
    table.add_row(
        "end of speech -> first accepted audio",
        f"p50 {_ms(s['first_audio_ms']['p50'])}, p99 {_ms(s['first_audio_ms']['p99'])}",
    )
    table.add_row(
        "barge-in -> turn aborted (seen in log)",
        f"p50 {_ms(s['cancel_to_abort_ms']['p50'])}, p99 {_ms(s['cancel_to_abort_ms']['p99'])}",
    )
    console.print(table)
    nodes = Table(title="audit: node latency per output (rspp audit report node_latency)")
    for col in ("node", "outputs", "p50", "p99"):
        nodes.add_column(col)
    for node, v in s["node_latency_ms"].items():
        nodes.add_row(node, str(v["outputs"]), _ms(v["p50"]), _ms(v["p99"]))
    console.print(nodes)
    r = s["replay"]
    verdict = (
        "[green]clean[/]" if r["divergences"] == 0 else f"[red]{r['divergences']} divergence(s)[/]"
    )
    console.print(
        f"export: {s['export']['dir']} ({s['export']['files']} Avro file(s), {s['export']['sessions']} sessions) -> "
        f"replay --resimulate: {r['turns']} turns, {r['events']} events, {verdict}"
    )
    gates = Table(title="MVP gates (pipelines/tests/mvp_gates_manifest_v1.yaml)")
    for col in ("gate", "value", "threshold", "result"):
        gates.add_column(col)
    for g in s["gates"]:
        value = "-" if g["value"] is None else f"{g['value']:g} {g['unit']}"
        gates.add_row(
            g["id"],
            value,
            f"{g['op']} {g['threshold']:g}",
            "[green]pass[/]" if g["passed"] else "[red]FAIL[/]",
        )
    console.print(gates)
    if s["problems"]:
        err_console.print(f"[red]{len(s['problems'])} problem(s) in the log:[/]")
        for p in s["problems"][:20]:
            err_console.print(f"  {p}")
    else:
        console.print(
            "[green]log check: clean[/] (lifecycle, plan hashes, epochs, correlation, cancel fencing, no duplicates)"
        )
    cancels = Table(title="audit: cancels (rspp audit report cancels)")
    for col in ("turn", "cancel -> abort", "egress after cancel"):
        cancels.add_column(col)
    for c in s["cancels"]:
        cancels.add_row(c["turn"], _ms(c["cancel_to_abort_ms"]), str(c["egress_after_cancel"]))
    console.print(cancels)
    console.print(
        f"replies (WAV, 16 kHz mono): {s['out_dir']}/replies/ ({len(s['wav_files'])} files)"
    )
    console.print(f"export (a replay fixture): {s['export']['dir']}")
    console.print(f"audit database: rspp audit report turns --db {s['audit_db']}")
