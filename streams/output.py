"""Output helpers of every command line (``rspp`` and the packages' own command groups):
one JSON convention, one console, and the one place an error that ends a command becomes a
single ``rspp: error: ...`` line. A bottom module: it imports nothing of RSPP, so
``pipelines`` and ``replay`` use it without importing the ``streams.cli`` layer above them."""

from __future__ import annotations

import errno
import math
import os
import sys
from typing import Any

import orjson
import typer
from rich.console import Console
from typer._click import exceptions as click  # typer vendors click: its own exception types

__all__ = ["console", "emit_json", "err_console", "error_line", "positive_seconds", "write_error"]

console = Console()
err_console = Console(stderr=True)

# An unexpected exception still ends in one line; this shows its traceback instead.
DEBUG_ENV = "RSPP_DEBUG"


def emit_json(value: Any) -> None:
    """Write ``value`` as indented JSON on stdout (for ``--json``)."""
    sys.stdout.write(
        orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    )


def positive_seconds(value: float | None) -> float | None:
    """Option callback: a duration must be a finite number above zero (not nan/inf/-1)."""
    if value is not None and not 0 < value < math.inf:
        raise typer.BadParameter(f"{value} is not a positive number of seconds")
    return value


def _one_line(text: str) -> str:
    # Arguments that were not UTF-8 reach Python as lone surrogates: show them escaped
    # rather than fail while reporting the failure.
    flat = " ".join(text.split())
    return flat.encode("utf-8", "backslashreplace").decode("utf-8")


def _os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOENT and exc.filename is not None:
        reason = "no such file or directory"
    named = [repr(os.fspath(f)) for f in (exc.filename, exc.filename2) if f is not None]
    return f"{' -> '.join(named)}: {reason}" if named else reason


def error_line(
    exc: BaseException, *, root_errors: tuple[type[BaseException], ...] = ()
) -> tuple[str, int]:
    """The one line and exit code for ``exc`` ending a command: 2 for usage errors, the
    error's own ``exit_code`` for the packages' root errors, 1 otherwise."""
    if isinstance(exc, click.UsageError):
        where = exc.ctx.command_path if exc.ctx is not None else "rspp"
        return _one_line(f"{where}: {exc.format_message()} (see '{where} --help')"), exc.exit_code
    if isinstance(exc, click.ClickException):
        return _one_line(exc.format_message()), exc.exit_code
    if isinstance(exc, root_errors):
        code = getattr(exc, "exit_code", 1)
        return _one_line(str(exc) or type(exc).__name__), code if isinstance(code, int) else 1
    if isinstance(exc, OSError):
        return _one_line(_os_error(exc)), 1
    detail = str(exc) or "no detail"
    kafka_error: Any = exc.args[0] if exc.args else None
    if callable(getattr(kafka_error, "str", None)):  # confluent_kafka.KafkaError
        detail = f"Kafka: {kafka_error.str()}"
    return _one_line(f"{type(exc).__name__}: {detail}"), 1


def write_error(message: str) -> None:
    """Write ``rspp: error: <message>`` as one line on stderr."""
    sys.stderr.write(f"rspp: error: {_one_line(message)}\n")
    sys.stderr.flush()
