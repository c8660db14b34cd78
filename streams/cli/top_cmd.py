"""``rspp top``: a live terminal view of one deployment (streams.observability.top)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from streams.cluster import resolve_bootstrap
from streams.output import console, emit_json

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command(name="top")(top)


def top(
    prefix: Annotated[str, typer.Option("--prefix", "-p", help="Deployment prefix.")],
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", help="A processor's metrics URL (http://host:port/metrics)."),
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Consumer group (default rspp-<prefix>).")
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, help="Seconds between refreshes.")
    ] = 1.0,
    once: Annotated[
        bool, typer.Option("--once", help="Read the log to its end, print once and exit.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="With --once: print JSON.")] = False,
    bootstrap: Annotated[
        str | None, typer.Option("--bootstrap", help="Kafka bootstrap servers.")
    ] = None,
) -> None:
    """Sessions, open turns, latency percentiles, control wait, lag, sheds and DLQ, refreshed
    in place (Ctrl-C exits)."""
    from rich.live import Live

    from streams.observability.top import TopView

    if json_out and not once:
        raise typer.BadParameter("--json needs --once", param_hint="--json")
    view = TopView(
        bootstrap=resolve_bootstrap(bootstrap, timeout=10),
        prefix=prefix,
        group=group or f"rspp-{prefix}",
        metrics_url=metrics,
    )
    try:
        if once:
            for _ in range(1000):  # a long log: fold it in bounded slices to its end
                if view.refresh():
                    break
            if json_out:
                emit_json(view.snapshot())
            else:
                console.print(view.render())
            return
        try:
            with Live(view.render(), console=console, auto_refresh=False, screen=False) as live:
                while True:
                    view.refresh()
                    live.update(view.render(), refresh=True)
                    time.sleep(interval)
        except KeyboardInterrupt:
            return  # Ctrl-C is how one leaves top: not an error
    finally:
        view.close()
