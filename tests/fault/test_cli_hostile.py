"""Every `rspp` subcommand answers hostile arguments in one line: a non-zero exit (2 for a
usage error), exactly one line on stderr, no traceback.

The command tree is walked, so a new command is covered without editing this file. Each
case makes one argument hostile (directories, missing or unreadable or binary files,
``..`` refs, non-UTF-8 text, empty strings, negative/huge/non-finite numbers, unknown
choices) while every other required argument gets a value that cannot do harm: no
``--yes``, a broker address nothing listens on, state and working directory in a temp
dir. Cases run in-process through :func:`streams.cli.main`, the console-script entry
point, with stdout and stderr captured separately.
"""

from __future__ import annotations

import enum
import os
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer._click import core as click_core
from typer.core import TyperArgument, TyperGroup

from pipelines.shipped import PIPELINES_DIR
from streams.cli import _register, app, main

SPEC = PIPELINES_DIR / "specs" / "simple_v1.yaml"
PROFILE = PIPELINES_DIR / "profiles" / "simple_v1.yaml"
BUNDLE = PIPELINES_DIR / "bundles" / "voice_assistant_bundle_v1.json"
UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1: connection refused at once
NOT_UTF8 = os.fsdecode(b"bad-\xff\xfe")  # how a non-UTF-8 argv entry reaches Python
# Placeholders for files made per test under its temp dir.
BINARY = "@binary"  # every byte value, repeated: not text, not Avro, not YAML
# Unreadable even for root (who reads mode-000 files): a path under a regular file, which
# fails every open with ENOTDIR.
UNREADABLE = "@unreadable"
MISSING = "@missing"

TEXTS = ("", " ", NOT_UTF8, "x@../..", "a" * 5000, "\x00")
# A command that wrongly accepts a path may write there: stand-ins under the temp dir take
# the place of /etc (a full directory) and /etc/passwd (a file that is not ours).
SYSTEM_DIR = "@sysdir"
SYSTEM_FILE = "@sysfile"
PATHS = (SYSTEM_DIR, SYSTEM_FILE, "/proc/nope", BINARY, MISSING, UNREADABLE, "", NOT_UTF8)
INTS = ("-1", "99999999999999999999999", "abc")
FLOATS = ("-1", "nan", "1e999", "abc")
CHOICES = ("nope", NOT_UTF8)

# Valid values for the arguments a case leaves alone, so that the hostile one is the only
# thing wrong (files from the shipped tree; nothing here writes outside the temp dir).
SAFE = {
    "bootstrap": UNREACHABLE, "prefix": "t-hostile", "port": "1", "spec": str(SPEC),
    "profile": str(PROFILE), "bundle": str(BUNDLE), "name": "turns", "version": "1.0.0",
    "query": "SELECT 1", "target": "voice_assistant@1.0.0", "session": "s1", "tenant": "acme",
    "out": "out",
}
# Free-form values a command accepts by design: the case must still not crash, and say at
# most one line on stderr, but may succeed. Session and tenant ids are opaque strings (only
# empty is refused); `ext` and `compat` belong to their own packages' checks.
ACCEPTS_ANY = {
    ("rollout", "resolve"): {"session", "tenant", "pins"},  # a new pins file is created
    ("keys", "generate"): {"out"},  # a key pair may go into any directory it can make
    ("ext", "list"): {"directory"},
    ("ext", "verify"): {"directory"},
    ("compat", "check"): {"target", "against", "mode", "subject", "junit"},
    ("bundle", "build"): {"description", "store", "out"},  # a new store or bundle file is fine
}


@dataclass(frozen=True)
class Case:
    path: tuple[str, ...]
    argv: tuple[str, ...]
    hostile: str = ""  # the parameter given the hostile value

    @property
    def id(self) -> str:
        shown = " ".join(a if len(a) < 40 else a[:12] + "..." for a in self.argv)
        return shown.encode("unicode_escape").decode()


def _commands(
    group: TyperGroup, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click_core.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, TyperGroup):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _kind(param: click_core.Parameter) -> type:
    """The parameter's scalar type: Optional and list[...] unwrapped."""
    hint: typing.Any = param.type_descriptor.annotation  # type: ignore[attr-defined]
    while typing.get_origin(hint) in (typing.Union, types.UnionType, list, typing.Annotated):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint if isinstance(hint, type) else str


def _values(param: click_core.Parameter) -> tuple[str, ...]:
    kind = _kind(param)
    if issubclass(kind, enum.Enum):
        return CHOICES
    if issubclass(kind, bool):
        return ()
    if issubclass(kind, int):
        return INTS
    if issubclass(kind, float):
        return FLOATS
    if issubclass(kind, Path):
        return PATHS
    return TEXTS


def _safe(param: click_core.Parameter) -> str:
    kind = _kind(param)
    if param.name in SAFE:
        return SAFE[param.name]
    if issubclass(kind, enum.Enum):
        return str(next(iter(kind)).value)
    if issubclass(kind, int | float):
        return "1"
    return MISSING


def _spell(param: click_core.Parameter, value: str) -> list[str]:
    if isinstance(param, TyperArgument):
        return ["--", value] if value.startswith("-") else [value]
    return [f"{param.opts[0]}={value}"] if param.opts[0].startswith("--") else [param.opts[0], value]


def _cases() -> Iterator[Case]:
    _register()
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    for path, command in _commands(root):
        params = [p for p in command.params if not getattr(p, "is_flag", False) and p.name != "help"]
        yield Case(path, (*path, "--no-such-option"))
        for target in params:
            for value in _values(target):
                argv = [*path]
                for other in params:
                    if other is target:
                        argv += _spell(other, value)
                    elif other.required or other.name == "bootstrap":
                        argv += _spell(other, _safe(other))
                yield Case(path, tuple(argv), target.name or "")


CASES = list(_cases())


@pytest.fixture
def hostile_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RSPP_HOME", str(tmp_path / "home"))
    # The session's bundle store is shared by every test: a hostile build must not claim a
    # name@version in it (the store keeps the first digest of each for good).
    monkeypatch.setenv("RSPP_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("RSPP_BOOTSTRAP", UNREACHABLE)
    monkeypatch.setenv("RSPP_CONNECT_TIMEOUT_S", "0.3")
    monkeypatch.setenv("RSPP_BROKER_PORT", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("RSPP_DEBUG", raising=False)
    (tmp_path / "binary").write_bytes(bytes(range(256)) * 64)
    (tmp_path / "plain").write_text("not a directory\n")
    (tmp_path / "sysdir" / "ssh").mkdir(parents=True)
    (tmp_path / "sysdir" / "hosts").write_text("127.0.0.1 localhost\n")
    (tmp_path / "sysdir" / "ssh" / "config.yaml").write_text("Host: '*'\n")
    (tmp_path / "sysfile").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return tmp_path


def _materialise(argv: tuple[str, ...], where: Path) -> list[str]:
    swap = {BINARY: "binary", MISSING: "missing", UNREADABLE: "plain/child",
            SYSTEM_DIR: "sysdir", SYSTEM_FILE: "sysfile"}
    out = []
    for arg in argv:
        real = arg
        for mark, name in swap.items():
            real = real.replace(mark, str(where / name))
        out.append(real)
    return out


def test_the_walk_finds_every_command_group() -> None:
    groups = {c.path[0] for c in CASES}
    assert {"abi", "audit", "broker", "bundle", "compat", "demo", "dlq", "export", "gates",
            "replay", "run", "topics", "validate"} <= groups
    assert len({c.path for c in CASES}) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_argument_fails_in_one_line(
    case: Case, hostile_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(_materialise(case.argv, hostile_env))
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    lines = out.err.splitlines()
    assert not (hostile_env / "sysdir" / "refs").exists()  # nothing written into a stranger's dir
    if case.hostile in ACCEPTS_ANY.get(case.path, ()):
        assert len(lines) <= 1, out.err
        return
    assert done.value.code not in (0, None), f"exit 0; stdout: {out.out[:300]!r}"
    assert len(lines) == 1, out.err
    if "--no-such-option" in case.argv:
        assert done.value.code == 2 and "no-such-option" in lines[0]
