"""``rspp topics apply|describe|delete``: the topic layout of one deployment prefix."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from streams.acls import apply_acls
from streams.cluster import resolve_bootstrap
from streams.config import kafka_settings
from streams.output import console, emit_json
from streams.topics import TopicLayout, apply_topics, delete_topics, describe_topics, topic_names

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Create and inspect the topics of a deployment prefix: "
        "P.control P.data P.telemetry (co-partitioned lanes), P.log (never compacted), "
        "P.leases P.sessions (compacted), P.dlq.\n\n"
        "Multi-tenant: `--tenant acme --tenant globex` gives each tenant its own lanes "
        "P.acme.control P.acme.data P.acme.telemetry ... (the outputs stay shared); on a "
        "SASL-secured cluster `apply` also creates the Kafka ACLs that let User:acme write "
        "only P.acme.* and the processor read every lane."
    ),
    no_args_is_help=True,
)

PrefixOpt = Annotated[
    str, typer.Option("--prefix", "-p", help="Deployment prefix, e.g. `prod.voice`.")
]
BootstrapOpt = Annotated[
    str | None,
    typer.Option(
        "--bootstrap", help="Kafka bootstrap servers (default RSPP_BOOTSTRAP or the local broker)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TenantOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tenant",
        "-t",
        help="A tenant with its own lane topics P.<tenant>.<lane>; repeat for each tenant "
        "(lower-case letters, digits, '_', '-'). Without it the prefix is single-tenant.",
    ),
]


@app.command()
def apply(
    prefix: PrefixOpt,
    partitions: Annotated[
        int, typer.Option("--partitions", "-n", help="Partitions of every topic.")
    ] = 6,
    replication: Annotated[
        int | None,
        typer.Option("--replication", help="Replication factor (default min(3, brokers))."),
    ] = None,
    bootstrap: BootstrapOpt = None,
    tenant: TenantOpt = None,
    acls: Annotated[
        bool | None,
        typer.Option(
            "--acls/--no-acls",
            help="Create the tenants' and the processor's ACLs (default: when "
            "RSPP_KAFKA_SECURITY_PROTOCOL is SASL_*). Needs a super user, e.g. `admin` "
            "of `rspp broker up --secure`.",
        ),
    ] = None,
    processor_user: Annotated[
        str, typer.Option("--processor-user", help="SASL user `rspp run` authenticates as.")
    ] = "processor",
    group: Annotated[
        str | None,
        typer.Option("--group", help="The processor's consumer group (default rspp-<prefix>)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create the missing topics of PREFIX (idempotent; refuses non-co-partitioned lanes),
    and on a secured cluster the ACLs that keep each tenant on its own lane topics."""
    layout = TopicLayout(prefix=prefix, partitions=partitions, tenants=tuple(tenant or ()))
    address = resolve_bootstrap(bootstrap, timeout=15.0)
    created = apply_topics(address, layout, replication=replication)
    if acls is None:
        acls = str(kafka_settings(address).get("security.protocol", "")).startswith("SASL")
    grants = apply_acls(address, layout, processor=processor_user, group=group) if acls else ()
    if json_out:
        emit_json(
            {
                "prefix": prefix,
                "bootstrap": address,
                "tenants": list(layout.tenants),
                "created": created,
                "acls": [g.as_dict() for g in grants],
            }
        )
        return
    if created:
        console.print(f"created {len(created)} topic(s): {', '.join(created)}")
    else:
        console.print(f"all topics of {prefix!r} already exist")
    if grants:
        console.print(
            f"ACLs in place: {len(grants)} rule(s) for {len(layout.tenants)} tenant(s) "
            f"and User:{processor_user}"
        )


@app.command()
def describe(
    prefix: PrefixOpt,
    bootstrap: BootstrapOpt = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show every topic of PREFIX with partitions, replication and key configs."""
    layout = TopicLayout(prefix=prefix, partitions=1, tenants=tuple(tenant or ()))
    address = resolve_bootstrap(bootstrap, timeout=15.0)
    rows = describe_topics(address, layout)
    if json_out:
        emit_json({"prefix": prefix, "bootstrap": address, "topics": [r.as_dict() for r in rows]})
        return
    table = Table(title=f"topics of {prefix} @ {address}")
    for col in ("topic", "role", "tenant", "partitions", "replication", "configs"):
        table.add_column(col)
    for r in rows:
        configs = ", ".join(f"{k}={v}" for k, v in r.configs)
        table.add_row(
            r.name,
            r.role.value,
            r.tenant or "-",
            str(r.partitions) if r.exists else "[red]missing[/]",
            str(r.replication or "-"),
            configs,
        )
    console.print(table)
    if not all(r.exists for r in rows):
        raise typer.Exit(1)


@app.command()
def delete(
    prefix: PrefixOpt,
    yes: Annotated[
        bool, typer.Option("--yes", help="Really delete; without it, only list what would go.")
    ] = False,
    bootstrap: BootstrapOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete every topic of PREFIX (P.*): its log, DLQ, lanes (every tenant's) and state.
    Needs --yes.

    Each partition keeps files open on the broker, so a development broker that
    collects demo, bench and test prefixes eventually runs out of file handles;
    delete prefixes you no longer audit.
    """
    TopicLayout(prefix=prefix)  # a bad prefix fails before connecting, and matches nothing
    address = resolve_bootstrap(bootstrap, timeout=15.0)
    if not yes:
        names = topic_names(address, starts_with=prefix + ".")
        if json_out:
            emit_json(
                {"prefix": prefix, "bootstrap": address, "deleted": [], "would_delete": names}
            )
        else:
            console.print(f"would delete {len(names)} topic(s): {', '.join(names) or '-'}")
            console.print("nothing deleted; re-run with --yes")
        raise typer.Exit(1)
    deleted = delete_topics(address, starts_with=prefix + ".")
    if json_out:
        emit_json({"prefix": prefix, "bootstrap": address, "deleted": deleted})
    else:
        console.print(f"deleted {len(deleted)} topic(s) of {prefix!r}")
