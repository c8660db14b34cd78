"""The ``rspp`` command line. Each command group lives in its own module.

Command groups register themselves in :func:`_register`; a group belongs to the
package whose code it drives (``pipelines.cli`` for artifacts, ``replay.cli``
for replay and audit). Every error that ends a command is printed as one line
(``rspp: error: ...``) with a non-zero exit (2 for usage), never as a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys

import typer
from typer._click import exceptions as click  # typer vendors click: its own exception types

from streams.output import DEBUG_ENV, error_line, write_error

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


def _escape_unencodable_output() -> None:
    """Paths and ids from the command line may hold bytes that are not UTF-8 (surrogates):
    echoing one must print it escaped, not raise while the report is written (rich would
    then keep the unwritable text buffered and fail every later print of the process)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. Whatever ends a command (usage, a package's root error,
    a file, the broker, a bug) ends it in one ``rspp: error:`` line: see
    :func:`streams.output.error_line`; ``RSPP_DEBUG=1`` re-raises unexpected ones."""
    _register()
    _escape_unencodable_output()
    try:
        code = app(args=argv, prog_name="rspp", standalone_mode=False)
    except click.NoArgsIsHelpError:
        # The group's help is already on stdout: typer's rich help prints itself while the
        # error formats it.
        raise SystemExit(2) from None
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("rspp: interrupted\n")
        raise SystemExit(130) from None
    except Exception as exc:
        roots = _root_errors()
        expected = isinstance(exc, (click.ClickException, OSError, *roots))
        if not expected and os.environ.get(DEBUG_ENV):
            raise
        message, status = error_line(exc, root_errors=roots)
        write_error(message)
        raise SystemExit(status) from None
    raise SystemExit(code if isinstance(code, int) else 0)
