"""``rspp ext list | verify | run-node``: inspect, check and debug extension nodes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from streams.extensions.errors import ExtensionLoadError
from streams.extensions.frames import decode_item, encode_item
from streams.extensions.registry import DEFAULT_DIR, ExtensionRegistry
from streams.output import console, emit_json

__all__ = ["app"]

app = typer.Typer(help="Extension nodes: pinned by digest, run isolated (guide section 4).")

DirOpt = Annotated[Path, typer.Option("--dir", help="Directory of ExtensionManifest files.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command("list")
def list_cmd(directory: DirOpt = DEFAULT_DIR, as_json: JsonOpt = False) -> None:
    """Manifests, their pins and installed state, and every rspp.nodes entry point."""
    registry = ExtensionRegistry.from_directory(directory)
    rows = [
        {"node_type": s.node_type, "extension": f"{s.name}@{s.version}", "impl_ref": s.impl_ref,
         "mode": s.execution_mode + (" (sandbox)" if s.sandboxed else ""), "state": s.state, "pinned": s.pinned, "actual": s.actual}
        for s in registry.statuses()
    ]
    eps = registry.entry_points()
    if as_json:
        emit_json({"extensions": rows, "entry_points": eps})
        return
    table = Table("node type", "extension", "impl_ref", "mode", "state", "pinned digest")
    for r in rows:
        table.add_row(r["node_type"], r["extension"], r["impl_ref"], r["mode"], r["state"],
                      str(r["pinned"])[:19] + "…")
    console.print(table)
    for name, value in sorted(eps.items()):
        console.print(f"entry point rspp.nodes: {name} = {value}")


@app.command("verify")
def verify_cmd(
    directory: DirOpt = DEFAULT_DIR,
    wheel: Annotated[Path | None, typer.Option("--wheel", help="Print a wheel's digest.")] = None,
) -> None:
    """Hash installed extension files against each manifest's pin; exit 1 on any mismatch."""
    if wheel is not None:
        from streams.extensions.digest import wheel_digest

        console.print(f"{wheel}: {wheel_digest(wheel)}")
        return
    statuses = ExtensionRegistry.from_directory(directory).statuses()
    for s in statuses:
        if s.state == "verified":
            console.print(f"ok {s.node_type} {s.name}@{s.version} {s.impl_ref} {s.actual}")
    refused = [s for s in statuses if s.state == "refused"]
    if refused:
        extra = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise refused[0].error(f"{refused[0].reason}{extra}")


def _read_items(path: Path) -> list[Any]:
    """JSON lines of items (``{"t": "transcript", ...}``) or plain text lines (final transcripts)."""
    items = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                items.append(decode_item(json.loads(line)))
            except ValueError as exc:
                raise ExtensionLoadError(f"{path}:{n}: {exc}") from None
        else:
            items.append(decode_item({"t": "transcript", "text": line, "final": True, "confidence": 1.0}))
    return items


@app.command("run-node")
def run_node_cmd(
    name: Annotated[str, typer.Argument(help="Node type (e.g. ext.sentiment) or extension name.")],
    input_file: Annotated[Path, typer.Option("--input", help="Items: JSON lines or text lines.")],
    config: Annotated[str, typer.Option("--config", help="Node config as JSON.")] = "{}",
    directory: DirOpt = DEFAULT_DIR,
) -> None:
    """Run one extension node in its isolated worker on a file of items; print its outputs."""
    from streams.nodes import NodeContext

    registry = ExtensionRegistry.from_directory(directory)
    status = next((s for s in registry.statuses() if name in (s.node_type, s.name)), None)
    if status is None:
        raise ExtensionLoadError(f"no extension manifest in {directory} names {name!r}")
    if status.state == "refused" or status.target is None:
        raise ExtensionLoadError(status.reason or f"{name}: no plugin found")
    items = _read_items(input_file)
    from streams.extensions.pool import WorkerPool
    from streams.extensions.proxy import IsolatedNode

    spec = replace(registry.worker_spec(status), config=json.loads(config))
    pool = WorkerPool(spec, size=1)

    async def run() -> None:
        node = IsolatedNode(pool, timeout_s=spec.timeout_s)
        ctx = NodeContext(session_id="run-node", turn_id="t1", node_id=status.node_type,
                          correlation_id="run-node")
        try:
            for item in items:
                async for out in node.process(item, ctx):
                    typer.echo(json.dumps(encode_item(out)))
            async for out in node.flush(ctx):
                typer.echo(json.dumps(encode_item(out)))
        finally:
            node.close()

    try:
        asyncio.run(run())
    finally:
        pool.close()
