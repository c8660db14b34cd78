"""The first code of a sandboxed worker: ``python confine.py UID GID DROP NPROC [probe]``.

Run as a script (not ``-m``) so that nothing is imported before it: the user
namespace it enters must be entered while the process has one thread, and
the worker's imports (numpy among them) start threads. In order:

1. refuse to run unless this is pid 2 of a fresh PID namespace (bwrap's
   init is pid 1), so the sweep's ``kill(-1)`` can only reach the sandbox;
2. leave root when bubblewrap started the worker as root (``DROP`` = 1):
   ``RLIMIT_NPROC`` is not enforced for uid 0;
3. enter a user namespace of its own, so the limit counts only this worker's
   processes and threads (not every process of the uid on the host);
4. set ``RLIMIT_NPROC`` (soft = hard) and become the reaper of everything it
   starts, then run :mod:`streams.extensions.worker` (``probe``: only import
   it, the sandbox's self-check).

A failure is written to stderr and exits 4: the host reports it as a worker
that could not start, and the node's calls fail.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import resource
import runpy
import sys

__all__: list[str] = []

_CLONE_NEWUSER = 0x10000000
_PR_SET_CHILD_SUBREAPER = 36
EXIT_CONFINE = 4


def confine(uid: int, gid: int, *, drop: bool, nproc: int) -> None:
    if os.getpid() != 2:
        raise OSError(f"not in a sandbox PID namespace (pid {os.getpid()})")
    if drop:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # clears every capability
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER) failed")
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    # Orphans of its children come back to it (not to bwrap's init): the sweep sees them all.
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def main(argv: list[str]) -> int:
    del sys.path[0]  # this script's directory: its modules must not shadow top-level names
    probe = argv[4:] == ["probe"]
    try:
        uid, gid, drop, nproc = (int(a) for a in argv[:4])
        confine(uid, gid, drop=bool(drop), nproc=nproc)
    except (OSError, ValueError) as exc:
        print(f"rspp sandbox: {exc}", file=sys.stderr)
        return EXIT_CONFINE
    if probe:
        importlib.import_module("streams.extensions.worker")
        return 0
    runpy.run_module("streams.extensions.worker", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
