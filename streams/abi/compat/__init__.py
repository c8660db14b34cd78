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
from streams.abi.compat.sources import (
    NewSchemas,
    PreviousVersions,
    mode_for,
    new_schema_set,
    open_source,
    own_history,
)
from streams.abi.errors import CompatSourceError
from streams.abi.schemas import file_stem

__all__ = [
    "CompatMode",
    "CompatReport",
    "Direction",
    "Incompatibility",
    "Previous",
    "PreviousVersions",
    "SubjectResult",
    "check_against",
    "check_schemas",
    "explain",
    "is_compatible",
]


def check_schemas(
    target: Path | None = None,
    *,
    against: str | PreviousVersions | None = None,
    mode: CompatMode | None = None,
    subjects: tuple[str, ...] = (),
    allow_empty: bool = False,
) -> CompatReport:
    """Check the schemas at ``target`` (dir or one ``.avsc``; default ``avro/``).

    ``against`` is a source spec (see :func:`open_source`) or an opened source;
    without one, a directory that keeps its own versions is checked against
    them, anything else against the default registry. ``mode`` overrides the
    per-subject mode of the version-skew policy. A subject of the previous set
    that is missing from the new one fails (every mode but NONE) unless a new
    schema names it in ``aliases``; the renamed subject is then checked
    against the old one's versions.
    """
    new = new_schema_set(target)
    if isinstance(against, PreviousVersions):
        source = against
    elif against is None and new.history:
        source = own_history(new)
    else:
        source = open_source(against, schema_dir=new.home)
    present = set(new.schemas.subjects())
    selected = _selected(new, subjects)
    previous_subjects = source.subjects()
    results: list[SubjectResult] = []
    renamed: set[str] = set()
    for subject in selected:
        composed = new.schemas.compose(subject)
        previous = source.for_subject(subject)
        renamed_from = None
        if not previous:
            renamed_from = _renamed_from(composed, previous_subjects - present)
            if renamed_from is not None:
                renamed.add(renamed_from)
                previous = source.for_subject(renamed_from)
        subject_mode = mode or mode_for(renamed_from or subject)
        checked = previous if subject_mode.transitive else previous[-1:]
        found = check_against(composed, previous, subject_mode, subject=subject)
        results.append(
            SubjectResult(
                subject=subject,
                mode=subject_mode,
                checked_against=tuple(p.label for p in checked)
                if subject_mode is not CompatMode.NONE
                else (),
                incompatibilities=tuple(found),
                history=len(previous),
                renamed_from=renamed_from,
            )
        )
    label = str(target or new.schemas.source)
    in_scope = _removal_scope(new, source, previous_subjects, subjects)
    unmatched = [r.subject for r in results if not r.history]
    for old in sorted(in_scope - present - renamed):
        results.append(_removed(old, source, mode or mode_for(old), unmatched, label))
    return CompatReport(
        source=label,
        against=source.label,
        subjects=tuple(results),
        allow_empty=allow_empty,
    )


def _selected(new: NewSchemas, subjects: tuple[str, ...]) -> list[str]:
    present = new.schemas.subjects()
    if subjects:
        missing = [s for s in subjects if s not in present and s not in new.schemas.definitions]
        if missing:
            raise CompatSourceError(
                f"--subject {missing[0]}: not a subject of {new.schemas.source}"
            )
        return list(subjects)
    if new.file_name is None:
        return list(present)
    # One file: the subjects it defines, and those that embed a type it defines.
    return [
        s for s in present if s in new.changed or _mentions(new.schemas.compose(s), new.changed)
    ]


def _removal_scope(
    new: NewSchemas,
    source: PreviousVersions,
    previous_subjects: frozenset[str],
    subjects: tuple[str, ...],
) -> set[str]:
    """Which previous subjects the new set must still hold."""
    if subjects:
        return {s for s in previous_subjects if s in subjects}
    if new.file_name is None:
        return set(previous_subjects)
    # One file answers for the file of the same name (in a registry: the subject of its stem).
    stem = file_stem(new.file_name)
    own = {f"{stem}.avsc", new.file_name}
    return {
        s for s in previous_subjects if s == stem or s in new.changed or source.origin(s) in own
    }


def _aliases(schema: object) -> list[str]:
    if not isinstance(schema, dict) or not isinstance(schema.get("aliases"), list):
        return []
    name = str(schema.get("name", ""))
    namespace = name.rpartition(".")[0]
    return [
        alias if "." in alias or not namespace else f"{namespace}.{alias}"
        for alias in schema["aliases"]
        if isinstance(alias, str)
    ]


def _renamed_from(composed: object, gone: frozenset[str]) -> str | None:
    """The vanished previous subject that ``composed`` names in its ``aliases``, if any."""
    for alias in _aliases(composed):
        if alias in gone:
            return alias
    return None


def _removed(
    old: str, source: PreviousVersions, mode: CompatMode, unmatched: list[str], where: str
) -> SubjectResult:
    previous = source.for_subject(old)
    latest = previous[-1].label if previous else old
    found: tuple[Incompatibility, ...] = ()
    if mode is not CompatMode.NONE:
        hint = (
            f'; if {" or ".join(unmatched)} replaces it, add "aliases": ["{old}"] there'
            if unmatched
            else ""
        )
        found = (
            Incompatibility(
                path=old,
                rule="subject removed",
                detail=f"{old} is not in {where}{hint}",
                against=latest,
                direction=Direction.REMOVED,
                location="",
            ),
        )
    return SubjectResult(
        subject=old,
        mode=mode,
        checked_against=(latest,) if mode is not CompatMode.NONE else (),
        incompatibilities=found,
        history=len(previous),
        removed=True,
    )


def _mentions(schema: object, names: frozenset[str]) -> bool:
    if isinstance(schema, dict):
        if schema.get("name") in names:
            return True
        return any(_mentions(v, names) for v in schema.values())
    if isinstance(schema, list):
        return any(_mentions(v, names) for v in schema)
    return isinstance(schema, str) and schema in names
