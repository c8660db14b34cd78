"""The ``rspp`` command line. Each command group lives in its own module.

Command groups register themselves in :func:`_register`; a group belongs to the
package whose code it drives (``pipelines.cli`` for artifacts, ``replay.cli``
for replay and audit). Errors derived from a package's root exception are
printed as one line (``rspp: error: ...``) and exit non-zero, never as a
traceback.
"""

from __future__ import annotations

import functools
import sys

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="rspp",
    help=(
        "RSPP: a real-time speech pipeline platform on Apache Kafka.\n\n"
        "Start here: `rspp demo` runs the whole product on a local broker. "
        "`rspp broker up` starts a local Apache Kafka (KRaft) broker; "
        "`rspp topics apply --prefix P` creates a deployment's topics."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


@functools.cache
def _register() -> None:
    from streams.cli import broker_cmd, demo_cmd, run_cmd, top_cmd, topics_cmd

    app.add_typer(broker_cmd.app, name="broker")
    app.add_typer(topics_cmd.app, name="topics")
    demo_cmd.register(app)
    run_cmd.register(app)
    top_cmd.register(app)
    from pipelines.cli import register as _reg_pipelines

    _reg_pipelines(app)
    from streams.abi import cli as abi_cli

    app.add_typer(abi_cli.compat_app, name="compat")
    app.add_typer(abi_cli.abi_app, name="abi")
    from replay.cli import register as _reg_replay

    _reg_replay(app)
    from replay.audit.cli import app as audit_app
    from replay.gates_cli import app as gates_app

    app.add_typer(gates_app, name="gates")

    app.add_typer(audit_app, name="audit")
    from streams.extensions.cli import app as ext_app

    app.add_typer(ext_app, name="ext")
    # Further command groups (pipelines, codec/compat, runtime, replay, audit)
    # register here, one line each.


def _root_errors() -> tuple[type[BaseException], ...]:
    from pipelines.errors import PipelinesError
    from replay.errors import ReplayError
    from streams.errors import StreamsError

    return (StreamsError, PipelinesError, ReplayError)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _register()
    try:
        app(args=argv, prog_name="rspp")
    except _root_errors() as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        sys.stderr.write(f"rspp: error: {message}\n")
        raise SystemExit(int(getattr(exc, "exit_code", 1))) from None
    except KeyboardInterrupt:
        sys.stderr.write("rspp: interrupted\n")
        raise SystemExit(130) from None
