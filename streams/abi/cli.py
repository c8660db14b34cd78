"""``rspp compat check`` and ``rspp abi show|register|decode``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from streams.abi.compat import CompatMode, check_schemas
from streams.abi.errors import CompatError, CompatSourceError
from streams.abi.version import ABI_VERSION

__all__ = ["abi_app", "compat_app"]

compat_app = typer.Typer(
    help="Gate Avro schema evolution: check avro/ against previous versions (dir, git:REF, registry).",
    no_args_is_help=True,
)
abi_app = typer.Typer(
    help="Inspect the Event ABI: subjects, schema ids, frames.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@compat_app.command("check")
def check(
    target: Annotated[
        Path | None,
        typer.Argument(help="Schema directory or one .avsc (default: avro/).", show_default=False),
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="Previous versions: DIR, git:REF, registry (default; file registry or RSPP_SCHEMA_REGISTRY_URL), "
            "or registry:URL.",
        ),
    ] = None,
    mode: Annotated[
        CompatMode | None,
        typer.Option(
            "--mode", case_sensitive=False, help="Override the per-subject mode of the skew policy."
        ),
    ] = None,
    subject: Annotated[
        list[str] | None, typer.Option("--subject", help="Check only this subject.")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write a JUnit XML report here.")
    ] = None,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="Exit 0 even if no subject had a previous version to check against.",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check schema compatibility; exit 0 if compatible, 1 if not (or if nothing was checked)."""
    from streams.output import emit_json

    report = check_schemas(
        target,
        against=against,
        mode=mode,
        subjects=tuple(subject or ()),
        allow_empty=allow_empty,
    )
    if junit is not None:
        try:
            junit.write_text(report.to_junit(), encoding="utf-8")
        except OSError as exc:
            raise CompatSourceError(f"--junit {junit}: {exc.strerror or exc}") from None
    if json_out:
        emit_json(report.to_json())
    else:
        sys.stdout.write(report.to_text() + "\n")
    empty = report.empty_reason
    if empty is not None and not allow_empty:
        raise CompatError(f"nothing checked: {empty} (pass --allow-empty to accept)")
    if not report.ok:
        broken = sum(len(s.incompatibilities) for s in report.subjects)
        raise CompatError(f"{broken} incompatibility(ies) against {report.against}")


@abi_app.command("show")
def show(json_out: JsonOpt = False) -> None:
    """List subjects with their current schema id and registered versions."""
    from streams.abi.registry import FileRegistry, default_registry
    from streams.abi.schemas import load_schema_dir, schema_id_for
    from streams.output import emit_json

    schemas = load_schema_dir()
    registry = default_registry()
    rows: list[dict[str, Any]] = []
    for subject in schemas.roots():
        composed = schemas.compose(subject)
        versions = registry.versions(subject)
        current = schema_id_for(composed) if isinstance(registry, FileRegistry) else None
        rows.append(
            {
                "subject": subject,
                "current_id": current,
                "registered": current in {v.schema_id for v in versions}
                if current is not None
                else None,
                "versions": [
                    {"version": v.version, "id": v.schema_id, "abi": v.abi_version}
                    for v in versions
                ],
                "named_types": len(schemas.definitions),
            }
        )
    if json_out:
        emit_json({"abi_version": ABI_VERSION, "subjects": rows})
        return
    sys.stdout.write(
        f"ABI {ABI_VERSION}, {len(schemas.definitions)} named types in {schemas.source}\n"
    )
    for row in rows:
        history = ", ".join(f"v{v['version']}=id {v['id']}" for v in row["versions"]) or "none"
        sys.stdout.write(
            f"{row['subject']}: current id {row['current_id']} (registered: {row['registered']}); versions: {history}\n"
        )


@abi_app.command("register")
def register() -> None:
    """Record the current schemas in avro/registry.json after a passing compat check."""
    from streams.abi.registry import FileRegistry
    from streams.abi.schemas import load_schema_dir

    # The first version of a subject has nothing to be checked against; that is fine here.
    report = check_schemas(allow_empty=True)
    if not report.ok:
        sys.stdout.write(report.to_text() + "\n")
        raise CompatError("refusing to register incompatible schemas")
    schemas = load_schema_dir()
    registry = FileRegistry()
    for subject in schemas.roots():
        version = registry.record(subject, schemas.compose(subject), abi_version=ABI_VERSION)
        sys.stdout.write(f"{version.label}\n")


@abi_app.command("decode")
def decode(
    frame_file: Annotated[
        Path, typer.Argument(help="File holding one Confluent-framed value ('-' = stdin).")
    ],
) -> None:
    """Decode one frame and print the event (a debugging aid)."""
    from streams.abi.codec import EventCodec
    from streams.topics import OUTPUT_MAX_RECORD_BYTES

    # A frame may come from any topic, P.dlq included; one byte more tells "too large"
    # without reading all of /dev/zero.
    want = OUTPUT_MAX_RECORD_BYTES + 1
    if str(frame_file) == "-":
        raw = sys.stdin.buffer.read(want)
    else:
        with frame_file.open("rb") as handle:
            raw = handle.read(want)
    sys.stdout.write(f"{EventCodec(max_frame_bytes=OUTPUT_MAX_RECORD_BYTES).decode(raw)!r}\n")
