"""Shared output helpers for CLI commands: one JSON convention, one console."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Console

__all__ = ["console", "emit_json", "err_console"]

console = Console()
err_console = Console(stderr=True)


def emit_json(value: Any) -> None:
    """Write ``value`` as indented JSON on stdout (for ``--json``)."""
    sys.stdout.write(
        orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    )
