"""Version history kept in a schema directory (the same rules for a directory and a git ref).

A directory may hold several versions of its schemas, by either or both of:

- ``<stem>.v<N>.avsc`` files: version ``N`` of the file ``<stem>.avsc``;
- ``v<N>/`` subfolders: the files of version ``N``.

Each version overlays the one before it, file by file, so a version need only
hold the files that changed. Unversioned ``*.avsc`` files at the top are the
newest version; they also stand in for any file that an older version lacks
(a shared type every version refers to). Without numbered versions the
directory is one version, as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from streams.abi.errors import SchemaError
from streams.abi.schemas import SchemaSet

__all__ = ["Snapshot", "is_schema_path", "snapshots"]

_VERSIONED_FILE = re.compile(r"^(?P<stem>.+)\.v(?P<n>[0-9]+)\.avsc$")
_VERSION_DIR = re.compile(r"^v(?P<n>[0-9]+)$")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One version of a schema directory: ``label`` is ``v<N>`` or ``current``."""

    label: str
    schemas: SchemaSet


def is_schema_path(rel: str) -> bool:
    """Whether a path (relative to the schema directory) takes part in the layout."""
    parts = rel.split("/")
    if len(parts) == 1:
        return parts[0].endswith(".avsc")
    return len(parts) == 2 and bool(_VERSION_DIR.match(parts[0])) and parts[1].endswith(".avsc")


def _split(
    files: Mapping[str, bytes], source: str
) -> tuple[dict[str, bytes], dict[int, dict[str, bytes]]]:
    plain: dict[str, bytes] = {}
    versions: dict[int, dict[str, bytes]] = {}
    where: dict[tuple[int, str], str] = {}
    for rel in sorted(files):
        if not is_schema_path(rel):
            continue
        parts = rel.split("/")
        if len(parts) == 1:
            match = _VERSIONED_FILE.match(parts[0])
            if match is None:
                plain[parts[0]] = files[rel]
                continue
            number, name = int(match["n"]), f"{match['stem']}.avsc"
        else:
            folder = _VERSION_DIR.match(parts[0])
            assert folder is not None  # is_schema_path checked it
            number, name = int(folder["n"]), parts[1]
        if (number, name) in where:
            raise SchemaError(
                f"{source}: {rel} and {where[number, name]} are both version {number} of {name}"
            )
        where[number, name] = rel
        versions.setdefault(number, {})[name] = files[rel]
    return plain, versions


def snapshots(files: Mapping[str, bytes], *, source: str) -> list[Snapshot]:
    """The versions in ``files`` (relative path -> content), oldest first; the last is the newest."""
    plain, versions = _split(files, source)
    if not plain and not versions:
        raise SchemaError(f"{source}: no .avsc files")
    out: list[Snapshot] = []
    carried: dict[str, bytes] = {}
    for number in sorted(versions):
        carried = {**carried, **versions[number]}
        texts: dict[str, str | bytes] = {**plain, **carried}
        out.append(
            Snapshot(f"v{number}", SchemaSet.from_texts(texts, source=f"{source} v{number}"))
        )
    if plain:
        newest: dict[str, str | bytes] = {**carried, **plain}
        out.append(Snapshot("current", SchemaSet.from_texts(newest, source=source)))
    return out
