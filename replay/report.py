"""Divergence reports: a rich table for people, JSON for tools, JUnit XML for CI.

JUnit has one testcase per turn (classname = session) so CI dashboards show
which recorded turn broke; session-level problems (lease grants, admission)
get a testcase named ``session:<id>``; the export's integrity is one more
testcase (``export.integrity``) that fails with every problem found.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from replay.errors import ReplayError
from replay.model import ReplayResult

__all__ = ["render_human", "summary_line", "to_json", "write_junit"]


def summary_line(result: ReplayResult) -> str:
    turns = [t for t in result.turns if t.turn_id is not None]
    bad = sum(1 for t in turns if not t.ok)
    if result.ok:
        verdict = "clean"
    else:
        parts = [f"{len(result.integrity)} integrity problem(s)"] if result.integrity else []
        if result.divergences or not parts:
            parts.append(f"{len(result.divergences)} divergence(s)")
        verdict = ", ".join(parts)
    return (f"replay ({result.mode}) of {result.source}: {result.events} events, {len(turns)} turns, "
            f"{bad} diverged — {verdict}; {result.seconds:.2f}s, "
            f"{result.events_per_second:,.0f} events/s")


def render_human(result: ReplayResult, console: Console) -> None:
    if result.divergences:
        table = Table(title="Replay divergences", show_lines=True)
        for col in ("kind", "session", "turn", "where", "node", "expected", "actual"):
            table.add_column(col, overflow="fold")
        for d in result.divergences:
            actual = d.actual if d.diff is None else f"{d.actual}\n[dim]{escape(d.diff)}[/dim]"
            table.add_row(d.kind.value, d.session_id, d.turn_id or "-",
                          escape(str(d.position) if d.position else "end of log"), d.node_id or "-",
                          escape(d.expected), actual if d.diff else escape(actual))
        console.print(table)
        for d in result.divergences:
            console.print(f"  [red]✗[/red] {escape(d.one_line())}")
    for problem in result.integrity:
        console.print(f"  [red]✗[/red] export: {escape(problem)}")
    for d in result.tolerated:  # within the policy's tolerances: shown, never failing
        console.print(f"  [yellow]~[/yellow] tolerated {escape(d.one_line())}")
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    style = "green" if result.ok else "red"
    console.print(f"[{style}]{escape(summary_line(result))}[/{style}]")


def to_json(result: ReplayResult) -> dict[str, Any]:
    return result.to_dict(timing=True)


def write_junit(result: ReplayResult, path: Path) -> None:
    failures = sum(1 for t in result.turns if not t.ok) + (1 if result.integrity else 0)
    suite = ET.Element("testsuite", {
        "name": "rspp-replay", "tests": str(len(result.turns) + 1), "failures": str(failures),
        "errors": "0",
        "time": f"{result.seconds:.3f}",
    })
    props = ET.SubElement(suite, "properties")
    for key, value in (("source", result.source), ("mode", result.mode),
                       ("events", str(result.events)), ("bundle", result.bundle or "")):
        ET.SubElement(props, "property", {"name": key, "value": value})
    # The export itself is one testcase: CI shows an incomplete export next to the turns.
    case = ET.SubElement(suite, "testcase", {"classname": "export", "name": "integrity",
                                             "time": "0"})
    if result.integrity:
        failure = ET.SubElement(case, "failure", {"message": result.integrity[0],
                                                  "type": "export_integrity"})
        failure.text = "\n".join(result.integrity)
    for turn in result.turns:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"{turn.tenant_id}.{turn.session_id}", "name": turn.name, "time": "0"})
        if turn.ok:
            continue
        first = turn.divergences[0]
        failure = ET.SubElement(case, "failure", {
            "message": first.one_line(), "type": first.kind.value})
        failure.text = "\n".join(
            f"{d.one_line()}\n  expected: {d.expected}\n  actual:   {d.actual}"
            + (f"\n  diff:     {d.diff}" if d.diff else "") for d in turn.divergences)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:  # "could not run" (2), not a divergence (1)
        raise ReplayError(f"--junit {path}: {exc.strerror or exc}") from None
