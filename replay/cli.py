"""``rspp export``, ``rspp replay`` and ``rspp keys``: the replay regression job's commands.

Exit codes: 0 clean, 1 divergence or an export that is unverified/incomplete,
2 could not run (bad input; the root CLI prints the ReplayError as one line
naming the file/offset).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from replay.api import Progress, replay
from replay.errors import ReplayError
from replay.export import export_log
from replay.report import render_human, summary_line, to_json, write_junit
from replay.sources import ContainerLogSource, KafkaLogSource, LogSource
from replay.verify import generate_keys
from streams.output import console, emit_json, err_console

__all__ = ["register"]

PrefixOpt = Annotated[str | None, typer.Option("--prefix", help="Deployment prefix: reads <prefix>.log.")]
BootstrapOpt = Annotated[str | None, typer.Option(
    "--bootstrap", help="Kafka bootstrap (default RSPP_BOOTSTRAP, else the local broker).")]
SessionOpt = Annotated[str | None, typer.Option("--session", help="Only this session.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Turns opened at/after (ISO-8601).")]
BundlesOpt = Annotated[list[Path] | None, typer.Option(
    "--bundles", help="Extra directory of bundle files (searched first); repeatable.")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Turns opened before (ISO-8601).")]


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ReplayError(f"{name} {value!r} is not an ISO-8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _kafka(prefix: str, bootstrap: str | None, **kw: object) -> KafkaLogSource:
    from streams.cluster import resolve_bootstrap

    try:
        address = resolve_bootstrap(bootstrap)
    except Exception as exc:  # any broker problem is "could not run"
        raise ReplayError(f"cannot reach Kafka for prefix {prefix}: {exc}") from None
    return KafkaLogSource(address, prefix, **kw)  # type: ignore[arg-type]


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    if not enabled or not err_console.is_terminal:
        yield None
        return
    from rich.progress import Progress as Bar
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    with Bar(SpinnerColumn(), TextColumn("replaying {task.completed:,} events"),
             TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("replay", total=None)
        yield lambda n: bar.update(task, completed=n)


def export_cmd(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the export into.")],
    prefix: Annotated[str, typer.Option("--prefix", help="Deployment prefix: reads <prefix>.log.")],
    bootstrap: BootstrapOpt = None, session: SessionOpt = None, tenant: TenantOpt = None,
    since: SinceOpt = None, until: UntilOpt = None,
    codec: Annotated[str, typer.Option("--codec", help="deflate or zstd.")] = "deflate",
    bundles: BundlesOpt = None,
    sign_key: Annotated[Path | None, typer.Option(
        "--sign-key", help="Ed25519 private key PEM: sign manifest.json (`rspp keys generate`).")] = None,
) -> None:
    """Export recorded turns from <prefix>.log as Avro container files + bundles + manifest."""
    if out.exists() and not out.is_dir():  # before reading the whole log, not after
        raise ReplayError(f"--out {out}: exists and is not a directory")
    source = _kafka(prefix, bootstrap, session=session, tenant=tenant,
                    since=_when(since, "--since"), until=_when(until, "--until"))
    manifest = export_log(source, out, prefix=prefix, codec=codec, tenant=tenant, session=session,
                          bundle_dirs=bundles or (), sign_key=sign_key)
    turns = sum(len(s["turns"]) for s in manifest["sessions"])
    signed = ", signed" if "signature" in manifest else ""
    console.print(f"exported {manifest['export']['events']} events, {len(manifest['sessions'])} "
                  f"sessions, {turns} turns, {len(manifest['bundles'])} bundle(s) to {out}{signed}")


def replay_cmd(
    source: Annotated[Path | None, typer.Argument(
        help="Export directory or .avro container file (omit and give --prefix to read Kafka).")] = None,
    prefix: PrefixOpt = None, bootstrap: BootstrapOpt = None, session: SessionOpt = None,
    tenant: TenantOpt = None, since: SinceOpt = None, until: UntilOpt = None,
    resimulate: Annotated[bool, typer.Option(
        "--resimulate", help="Re-execute deterministic nodes and diff their outputs.")] = False,
    bundle: Annotated[Path | None, typer.Option(
        "--bundle", help="Candidate bundle: what would change if it had been live?")] = None,
    bundles: BundlesOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    allow_unverified: Annotated[bool, typer.Option(
        "--allow-unverified", help="Replay an export or .avro file that has no manifest.")] = False,
    verify_key: Annotated[Path | None, typer.Option(
        "--verify-key", help="Ed25519 public key PEM the export's manifest must be signed with.")] = None,
) -> None:
    """Re-read recorded turns against their frozen plans; exit 1 on divergence.

    An export is checked against its manifest (partitions, offsets, turns, digests,
    prefix and cluster); one without a manifest fails unless --allow-unverified.
    """
    window = {"session": session, "tenant": tenant, "since": _when(since, "--since"),
              "until": _when(until, "--until")}
    log: LogSource
    if source is not None:
        log = ContainerLogSource(source, prefix=prefix, allow_unverified=allow_unverified,
                                 verify_key=verify_key, **window)  # type: ignore[arg-type]
    elif verify_key is not None or allow_unverified:
        raise ReplayError("--verify-key and --allow-unverified apply to an export, not to --prefix")
    elif prefix is not None:
        log = _kafka(prefix, bootstrap, **window)
    else:
        raise ReplayError("give an export directory / .avro file, or --prefix to read Kafka")
    with _progress(not json_out) as progress:
        result = replay(log, resimulate=resimulate, bundle=bundle, bundle_dirs=bundles or (),
                        progress=progress)
    if junit is not None:
        write_junit(result, junit)
    if json_out:
        emit_json(to_json(result))
        err_console.print(summary_line(result), highlight=False)
    else:
        render_human(result, console)
    raise typer.Exit(result.exit_code)


keys_app = typer.Typer(help="Key pairs that sign and verify export manifests.",
                       no_args_is_help=True)


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", help="Directory for rspp-export.key and .pub.")],
) -> None:
    """Make an Ed25519 key pair (PEM): sign with `rspp export --sign-key DIR/rspp-export.key`,
    verify with `rspp replay --verify-key DIR/rspp-export.pub`. The private key is mode 0600."""
    private, public = generate_keys(out)
    console.print(f"private key {private} (0600; keep it secret)")
    console.print(f"public key  {public}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
    app.command("replay")(replay_cmd)
    app.add_typer(keys_app, name="keys")
