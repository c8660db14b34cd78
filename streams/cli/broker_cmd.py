"""``rspp broker up|down|status|logs``: a local Apache Kafka broker without Docker."""

from __future__ import annotations

from typing import Annotated

import typer

from streams.broker import BrokerConfig, BrokerStatus, LocalBroker
from streams.cli.output import console, emit_json, err_console, positive_seconds
from streams.config import external_bootstrap, kafka_version, local_broker_port

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Manage a single-node Apache Kafka broker (KRaft mode) resolved from Maven Central.\n\n"
        "Jars are cached under $RSPP_HOME (default ~/.cache/rspp). Needs Java 17+ and Maven. "
        "When RSPP_BOOTSTRAP is set, RSPP uses that cluster and these commands start nothing."
    ),
    no_args_is_help=True,
)

# The controller listens on port + 1.
PortOpt = Annotated[
    int | None,
    typer.Option(
        "--port", min=1, max=65534, help="Client port (default $RSPP_BROKER_PORT or 9092)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _broker(port: int | None) -> LocalBroker:
    return LocalBroker(BrokerConfig(port=port or local_broker_port(), version=kafka_version()))


def _external_notice(json_out: bool) -> bool:
    ext = external_bootstrap()
    if ext is None:
        return False
    if json_out:
        emit_json({"external": True, "bootstrap": ext})
    else:
        console.print(
            f"RSPP_BOOTSTRAP is set: using the external cluster at [bold]{ext}[/]; nothing started."
        )
    return True


@app.command()
def up(
    port: PortOpt = None,
    timeout: Annotated[
        float, typer.Option(callback=positive_seconds, help="Seconds to wait for readiness.")
    ] = 90.0,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="Stop it if running and discard every topic first (CI starts clean)."
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Start the broker (idempotent) and wait until an AdminClient metadata call answers."""
    if _external_notice(json_out):
        return
    broker = _broker(port)
    if not json_out:
        err_console.print(
            f"starting Apache Kafka {broker.config.version} on {broker.config.bootstrap} ..."
        )
    status = broker.up(timeout=timeout, fresh=fresh)
    if json_out:
        emit_json(status.as_dict())
        return
    console.print(
        f"broker ready at [bold]{status.bootstrap}[/] (pid {status.pid}, Kafka {status.version})"
    )
    _warn_if_crowded(status)


def _warn_if_crowded(status: BrokerStatus) -> None:
    if status.crowded:
        err_console.print(
            f"[yellow]warning:[/] {status.partitions_on_disk} partitions on disk; each holds open "
            "files and the broker halts when it runs out. Drop old prefixes with "
            "`rspp topics delete --prefix P --yes`, or start empty with `rspp broker up --fresh`."
        )


@app.command()
def down(port: PortOpt = None, json_out: JsonOpt = False) -> None:
    """Stop the broker that `rspp broker up` started (only that process)."""
    if _external_notice(json_out):
        return
    stopped = _broker(port).down()
    if json_out:
        emit_json({"stopped": stopped})
    else:
        console.print("broker stopped" if stopped else "no broker was running")


@app.command()
def status(port: PortOpt = None, json_out: JsonOpt = False) -> None:
    """Show bootstrap, version, pid and log dir. Exit 1 if the broker is not ready."""
    if _external_notice(json_out):
        return
    st = _broker(port).status()
    if json_out:
        emit_json(st.as_dict())
    else:
        state = "ready" if st.ready else ("starting/unhealthy" if st.running else "stopped")
        console.print(f"state:     {state}")
        console.print(f"bootstrap: {st.bootstrap}")
        console.print(f"version:   Apache Kafka {st.version}")
        console.print(f"pid:       {st.pid if st.pid is not None else '-'}")
        console.print(f"state dir: {st.state_dir}")
        console.print(f"log file:  {st.log_file}")
        console.print(f"partitions on disk: {st.partitions_on_disk}")
        _warn_if_crowded(st)
    if not st.ready:
        raise typer.Exit(1)


@app.command()
def logs(
    port: PortOpt = None,
    lines: Annotated[
        int, typer.Option("-n", "--lines", min=0, max=1_000_000, help="How many lines from the end.")
    ] = 50,
) -> None:
    """Print the end of the broker's server log."""
    for line in _broker(port).logs(lines=lines):
        typer.echo(line)
