"""The bubblewrap sandbox an untrusted node's worker runs in.

One :class:`Sandbox` says what a worker may see, as explicit arguments:

- mounts: a read-only view of the Python runtime (interpreter prefix, the
  shared libraries under ``/usr/lib``, the environment's site-packages, the
  ``streams`` package) plus ``read_only`` (the extension's own package); a
  private ``tmpfs`` scratch directory (``/scratch``, also ``HOME`` and
  ``TMPDIR``). Nothing else of the host exists inside: no ``/etc``, no
  ``/tmp``, no repository, no ``/usr/bin``;
- namespaces: PID, IPC, UTS (and cgroup where possible), the network unless
  ``network``; the worker is pid 2 of its PID namespace, in a new session,
  and dies with the sandbox (``--die-with-parent``);
- a process limit: ``RLIMIT_NPROC`` is not enforced for uid 0, so a root
  processor starts the worker as root inside bubblewrap only long enough to
  switch to ``uid``/``gid``; the worker then enters a user namespace of its
  own, where ``nproc`` counts only its own processes (see
  :mod:`streams.extensions.worker`). A non-root processor runs bubblewrap
  unprivileged, which maps the worker to its own non-root uid.

The sandbox is started once per worker process, never per call.
:meth:`Sandbox.check` starts a probe sandbox once per configuration (it
confines itself and imports the worker, without an extension); when that
fails, untrusted nodes are refused at load (fail closed).

``--die-with-parent`` ties bubblewrap to the *thread* that started it
(``PR_SET_PDEATHSIG``): workers are started from the processor's event loop
thread, or from the thread building the graph; a worker whose starting thread
ends is killed, and the pool replaces it on its next call.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from streams.extensions.errors import SandboxUnavailableError

__all__ = ["SCRATCH", "Sandbox", "inner_pid", "runtime_paths"]

SCRATCH = "/scratch"
_LIBS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32")
_PROBE_TIMEOUT_S = 30.0
_checked: dict[tuple[Sandbox, bool], str | None] = {}
_checked_lock = threading.Lock()


def runtime_paths() -> tuple[str, ...]:
    """Host directories the worker needs to start: interpreter prefix, site-packages, and the
    ``streams`` and ``pipelines`` packages (node types are declared with their config models)."""
    import pipelines
    import streams

    paths = [sys.base_prefix]
    paths += [sysconfig.get_paths()[key] for key in ("purelib", "platlib")]
    paths += [str(Path(pkg.__file__ or "").resolve().parent) for pkg in (streams, pipelines)]
    return _outermost(p for p in paths if os.path.isdir(p))


def _outermost(paths: Iterable[str]) -> tuple[str, ...]:
    """Resolved, deduplicated paths without the ones under another (bound already)."""
    resolved = sorted({os.path.realpath(p) for p in paths})
    out: list[str] = []
    for path in resolved:
        if not any(path == kept or path.startswith(kept.rstrip("/") + "/") for kept in out):
            out.append(path)
    return tuple(out)


def inner_pid(outer: int) -> int | None:
    """The host pid of the worker under bubblewrap ``outer`` (bwrap -> its init -> worker)."""
    pid = outer
    for _level in range(2):
        try:
            with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
                children = f.read().split()
        except OSError:
            return None
        if not children:
            return None
        pid = int(children[0])
    return pid


@dataclass(frozen=True, slots=True, kw_only=True)
class Sandbox:
    """How one untrusted worker is confined (a bubblewrap command line)."""

    bwrap: str = "bwrap"
    read_only: tuple[str, ...] = ()  # besides the runtime: the extension's own package
    network: bool = False
    nproc: int = 32  # processes and threads of the worker, itself included
    scratch_mb: int = 64
    uid: int = 65534  # what a root processor's workers run as (nobody)
    gid: int = 65534

    @property
    def privileged(self) -> bool:
        """Root runs bubblewrap privileged; the worker drops to ``uid`` itself."""
        return os.geteuid() == 0

    def interpreter(self) -> str:
        """The real interpreter (a venv's ``python`` is a symlink outside the sandbox)."""
        return os.path.realpath(sys.executable)

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` (an interpreter command) as a bubblewrap command line."""
        binary = shutil.which(self.bwrap) or self.bwrap
        args = [binary, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts", "--unshare-cgroup-try"]
        if not self.network:
            args.append("--unshare-net")
        if self.privileged:
            # Only what the worker needs to leave root (setresuid clears them).
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args.append("--unshare-user")
        links = [lib for lib in _LIBS if os.path.islink(lib)]
        libs = [lib for lib in _LIBS if os.path.isdir(lib) and lib not in links]
        runtime = runtime_paths()
        binds = _outermost((*libs, *runtime, *self.read_only))
        # Privileged bwrap makes missing parents 0700: the worker (not root) could not pass.
        parents = sorted({str(p) for path in binds for p in Path(path).parents if str(p) != "/"},
                         key=lambda p: (p.count("/"), p))
        for parent in parents:
            args += ["--perms", "0755", "--dir", parent]
        for path in binds:
            args += ["--ro-bind", path, path]
        for link in links:  # merged /usr: /lib -> usr/lib
            args += ["--symlink", os.readlink(link), link]
        pythonpath = [str(Path(p).parent) for p in runtime if p.endswith("/streams")]
        pythonpath += [sysconfig.get_paths()[key] for key in ("purelib", "platlib")]
        args += ["--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(self.scratch_mb << 20), "--tmpfs", SCRATCH,
                 "--chdir", SCRATCH, "--clearenv",
                 "--setenv", "HOME", SCRATCH, "--setenv", "TMPDIR", SCRATCH,
                 "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
                 # Native thread pools size themselves by the host's cores, which would
                 # make the process limit depend on the machine: one thread each.
                 "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "OPENBLAS_NUM_THREADS", "1",
                 "--setenv", "MKL_NUM_THREADS", "1",
                 "--setenv", "PYTHONPATH", ":".join(dict.fromkeys(pythonpath))]
        return [*args, "--", *argv]

    def worker_argv(self, *, probe: bool = False) -> list[str]:
        """The worker's command: :mod:`~streams.extensions.confine` first, then the worker
        (with ``probe``: confine, import the worker and exit)."""
        confine = str(Path(__file__).resolve().with_name("confine.py"))
        return self.wrap([self.interpreter(), "-s", confine, str(self.uid), str(self.gid),
                          str(int(self.privileged)), str(self.nproc), *(["probe"] if probe else [])])

    def init_message(self) -> dict[str, int]:
        return {"nproc": self.nproc}

    def check(self) -> None:
        """Raise :class:`SandboxUnavailableError` unless a probe sandbox starts (cached)."""
        key = (replace(self, read_only=()), self.privileged)
        with _checked_lock:
            if key not in _checked:
                _checked[key] = self._probe()
            reason = _checked[key]
        if reason is not None:
            raise SandboxUnavailableError(reason)

    def _probe(self) -> str | None:
        if shutil.which(self.bwrap) is None:
            return f"bubblewrap not found ({self.bwrap!r}; Debian package bubblewrap)"
        try:
            done = subprocess.run(self.worker_argv(probe=True), stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap self-check failed ({exc})"
        if done.returncode != 0:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            tail = lines[-1][:200] if lines else f"exit status {done.returncode}"
            return f"bubblewrap self-check failed ({tail})"
        return None
