"""Content digests that pin an extension's code: installed distribution, wheel or module.

The digest is the sha256 of sorted ``path NUL sha256(content) LF`` lines over
the files the distribution installs into ``site-packages`` (from its RECORD;
the ``.dist-info`` metadata, bytecode and files installed elsewhere such as
scripts are left out, since installers and build backends rewrite them), plus
one ``entry-point`` line per ``rspp.nodes`` entry point. A wheel hashes to the
same value as the distribution installed from it, so a release can be pinned
before it is installed. File contents are read and hashed: a file modified
after installation changes the digest even though RECORD still lists the old hash.
"""

from __future__ import annotations

import configparser
import hashlib
import importlib.util
import json
import zipfile
from collections.abc import Iterable
from importlib.metadata import Distribution
from pathlib import Path

from streams.extensions.errors import ExtensionLoadError, ExtensionNotFoundError

__all__ = ["ENTRY_POINT_GROUP", "distribution_digest", "files_digest", "module_digest", "wheel_digest"]

ENTRY_POINT_GROUP = "rspp.nodes"


def files_digest(files: Iterable[tuple[str, bytes]], entry_points: Iterable[str] = ()) -> str:
    lines = sorted(f"{path}\0{hashlib.sha256(data).hexdigest()}\n" for path, data in files)
    lines += sorted(f"entry-point\0{ep}\n" for ep in entry_points)
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def _pinned(path: str) -> bool:
    first = path.split("/", 1)[0]
    return not (
        first.endswith((".dist-info", ".data"))
        or first == ".."
        or "__pycache__/" in path
        or path.endswith((".pyc", ".pyo"))
    )


def _entry_points_text(text: str | None) -> list[str]:
    if not text:
        return []
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    if not parser.has_section(ENTRY_POINT_GROUP):
        return []
    return [f"{k.strip()}={v.strip()}" for k, v in parser.items(ENTRY_POINT_GROUP)]


def distribution_digest(dist: Distribution) -> str:
    """Digest of an installed (non-editable) distribution's files."""
    name = dist.metadata["Name"]
    direct = dist.read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        raise ExtensionLoadError(
            f"distribution {name} is installed editable (pip -e): its RECORD does not list the "
            "source files, so it cannot be pinned; install it without -e")
    files = dist.files
    if files is None:
        raise ExtensionLoadError(f"distribution {name} has no RECORD; cannot pin its files")
    entries: list[tuple[str, bytes]] = []
    for f in files:
        rel = f.as_posix()
        if not _pinned(rel):
            continue
        try:
            entries.append((rel, Path(str(f.locate())).read_bytes()))
        except OSError as exc:
            raise ExtensionLoadError(f"distribution {name}: file {rel} listed in RECORD "
                                     f"cannot be read ({exc.strerror})") from None
    return files_digest(entries, _entry_points_text(dist.read_text("entry_points.txt")))


def wheel_digest(path: Path) -> str:
    """Digest of a wheel; equal to :func:`distribution_digest` of its installation."""
    try:
        with zipfile.ZipFile(path) as wheel:
            names = [n for n in wheel.namelist() if not n.endswith("/")]
            entries = [(n, wheel.read(n)) for n in names if _pinned(n)]
            eps = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
            text = wheel.read(eps).decode() if eps else None
    except (OSError, zipfile.BadZipFile) as exc:
        raise ExtensionLoadError(f"{path}: not a readable wheel ({exc})") from None
    return files_digest(entries, _entry_points_text(text))


def module_digest(module: str) -> str:
    """Digest of a plain module or package's source files (local and test extensions)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise ExtensionNotFoundError(f"module {module} cannot be found ({exc})") from None
    if spec is None or spec.origin is None:
        raise ExtensionNotFoundError(f"module {module} is not installed or has no source file")
    origin = Path(spec.origin)
    if spec.submodule_search_locations:  # a package: every file under it
        root = origin.parent
        files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    else:
        root, files = origin.parent, [origin]
    entries = [(p.relative_to(root).as_posix(), p.read_bytes()) for p in files]
    return files_digest((rel, data) for rel, data in entries if _pinned(rel))
