"""``rspp broker up|down|status|logs``: a local Apache Kafka broker without Docker."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from streams.broker import BrokerConfig, BrokerStatus, LocalBroker
from streams.config import external_bootstrap, kafka_version, local_broker_port
from streams.output import console, emit_json, err_console, positive_seconds
from streams.topics import validate_tenant

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Manage a single-node Apache Kafka broker (KRaft mode) resolved from Maven Central.\n\n"
        "Jars are cached under $RSPP_HOME (default ~/.cache/rspp). Needs Java 17+ and Maven. "
        "When RSPP_BOOTSTRAP is set, RSPP uses that cluster and these commands start nothing.\n\n"
        "Multi-tenant: `rspp broker up --secure --tenant acme --tenant globex` starts it with "
        "SASL/SCRAM and ACLs enforced; `rspp broker credentials` prints how to connect."
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


def _broker(
    port: int | None,
    *,
    secure: bool = False,
    tenants: tuple[str, ...] = (),
    processor_user: str = "processor",
) -> LocalBroker:
    return LocalBroker(
        BrokerConfig(
            port=port or local_broker_port(),
            version=kafka_version(),
            secure=secure,
            tenants=tenants,
            processor_user=processor_user,
        )
    )


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
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="SASL_PLAINTEXT with SCRAM-SHA-256, StandardAuthorizer, deny unless an ACL "
            "allows: users `admin` (super user), the processor, and one per --tenant; "
            "passwords in <state dir>/credentials.json (0600).",
        ),
    ] = False,
    tenant: Annotated[
        list[str] | None,
        typer.Option(
            "--tenant",
            "-t",
            help="With --secure: a SCRAM user for this tenant (repeat per tenant; adding one "
            "to a running broker creates the user).",
        ),
    ] = None,
    processor_user: Annotated[
        str, typer.Option("--processor-user", help="With --secure: the processor's user.")
    ] = "processor",
    json_out: JsonOpt = False,
) -> None:
    """Start the broker (idempotent) and wait until an AdminClient metadata call answers."""
    if tenant and not secure:
        raise typer.BadParameter("--tenant makes SCRAM users: it needs --secure")
    # Checked first: every option is judged, also when an external cluster makes `up` a no-op.
    validate_tenant(processor_user)  # a SCRAM user name, under the same rules as a tenant's
    broker = _broker(
        port, secure=secure, tenants=tuple(tenant or ()), processor_user=processor_user
    )
    if _external_notice(json_out):
        return
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
    if status.secure:
        console.print(
            f"secured: SASL_PLAINTEXT/SCRAM-SHA-256, users {', '.join(status.users)}; "
            "`rspp broker credentials --user admin` prints how to connect"
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
        if st.secure:
            console.print("security:  SASL_PLAINTEXT, SCRAM-SHA-256, ACLs enforced")
            console.print(f"users:     {', '.join(st.users)} (`rspp broker credentials`)")
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


@app.command()
def credentials(
    port: PortOpt = None,
    user: Annotated[
        str | None,
        typer.Option("--user", "-u", help="Only this user, as `export` lines for eval."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """How to connect to the secure broker: RSPP_BOOTSTRAP and RSPP_KAFKA_* per user.

    `eval "$(rspp broker credentials --user admin)"` then `rspp topics apply ... --tenant
    acme`; `--user processor` for `rspp run`; `--user acme` for acme's voice service.
    """
    creds = _broker(port).credentials()
    if creds is None:
        raise typer.BadParameter(
            "this broker is not secured (start it with `rspp broker up --secure`)",
            param_hint="--port",
        )
    users = [user] if user is not None else sorted(creds.users)
    envs = {u: creds.env(u) for u in users}  # raises for an unknown --user
    if json_out:
        emit_json({"bootstrap": creds.bootstrap, "users": envs})
        return
    for name, env in envs.items():
        if user is None:
            typer.echo(f"# {name}: {creds.role(name)}")
        typer.echo("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))
