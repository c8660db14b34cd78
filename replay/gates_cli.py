"""``rspp gates check``: the MVP gates of a manifest, measured on a recorded run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from xml.etree import ElementTree as ET

import typer
from rich.console import Console
from rich.table import Table

from replay.gates import DEFAULT_MANIFEST, GateResult, evaluate_gates, load_gates

__all__ = ["app"]

app = typer.Typer(
    help="Evaluate the MVP gates (latency, cancel fence, authority, replay, lifecycle) on a recording."
)

def _junit(results: list[GateResult], path: Path) -> None:
    suite = ET.Element(
        "testsuite",
        name="rspp.gates",
        tests=str(len(results)),
        failures=str(sum(not r.passed for r in results)),
    )
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname=f"gates.{r.gate.category}", name=r.gate.id
        )
        if not r.passed:
            failure = ET.SubElement(
                case,
                "failure",
                message=f"{r.gate.metric} = {r.value} (expected {r.gate.op} {r.gate.threshold})",
            )
            failure.text = r.detail
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


@app.command("check")
def check(
    source: Annotated[
        Path, typer.Option("--from", help="An export directory (`rspp export --out DIR`).")
    ],
    manifest: Annotated[
        Path,
        typer.Option(
            "--manifest",
            help="The GatesManifest.",
            show_default="the packaged pipelines/tests/mvp_gates_manifest_v1.yaml",
        ),
    ] = DEFAULT_MANIFEST,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write a JUnit XML report here.")
    ] = None,
) -> None:
    """Pass/fail per gate with the measured value and threshold; exit 1 if any gate fails."""
    from streams.output import emit_json

    results = evaluate_gates(load_gates(manifest), source)
    if junit is not None:
        _junit(results, junit)
    if json_out:
        emit_json(
            {
                "manifest": str(manifest),
                "source": str(source),
                "gates": [r.as_dict() for r in results],
                "passed": all(r.passed for r in results),
            }
        )
    else:
        table = Table(title=f"MVP gates on {source}")
        for col in ("gate", "category", "metric", "value", "threshold", "result"):
            table.add_column(col)
        for r in results:
            value = "-" if r.value is None else f"{r.value:g} {r.gate.unit}"
            table.add_row(
                r.gate.id,
                r.gate.category,
                r.gate.metric,
                value,
                f"{r.gate.op} {r.gate.threshold:g}",
                "[green]pass[/]" if r.passed else f"[red]FAIL[/] {r.detail}",
            )
        Console().print(table)
    if not all(r.passed for r in results):
        raise typer.Exit(1)
