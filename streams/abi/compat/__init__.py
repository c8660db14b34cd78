"""``rspp compat check``: gate Avro schema evolution against previous versions."""

from __future__ import annotations

from pathlib import Path

from streams.abi.compat.checker import (
    CompatMode,
    Direction,
    Incompatibility,
    Previous,
    check_against,
    explain,
    is_compatible,
)
from streams.abi.compat.report import CompatReport, SubjectResult
from streams.abi.compat.sources import mode_for, new_schema_set, open_source

__all__ = [
    "CompatMode",
    "CompatReport",
    "Direction",
    "Incompatibility",
    "Previous",
    "SubjectResult",
    "check_against",
    "check_schemas",
    "explain",
    "is_compatible",
]


def check_schemas(
    target: Path | None = None,
    *,
    against: str | None = None,
    mode: CompatMode | None = None,
    subjects: tuple[str, ...] = (),
) -> CompatReport:
    """Check the schemas at ``target`` (dir or one ``.avsc``; default ``avro/``).

    ``against`` is a source spec (see :func:`open_source`); ``mode`` overrides the
    per-subject mode of the version-skew policy.
    """
    new_set, changed = new_schema_set(target)
    schema_dir = target if target is not None and target.is_dir() else None
    source = open_source(against, schema_dir=schema_dir)
    results: list[SubjectResult] = []
    for subject in subjects or new_set.roots():
        composed = new_set.compose(subject)
        if changed is not None and not _mentions(composed, changed):
            continue
        subject_mode = mode or mode_for(subject)
        previous = source.for_subject(subject)
        checked = previous if subject_mode.transitive else previous[-1:]
        found = check_against(composed, previous, subject_mode)
        results.append(
            SubjectResult(
                subject=subject,
                mode=subject_mode,
                checked_against=tuple(p.label for p in checked)
                if subject_mode is not CompatMode.NONE
                else (),
                incompatibilities=tuple(found),
            )
        )
    return CompatReport(
        source=str(target or new_set.source), against=source.label, subjects=tuple(results)
    )


def _mentions(schema: object, names: frozenset[str]) -> bool:
    if isinstance(schema, dict):
        if schema.get("name") in names:
            return True
        return any(_mentions(v, names) for v in schema.values())
    if isinstance(schema, list):
        return any(_mentions(v, names) for v in schema)
    return isinstance(schema, str) and schema in names
