"""Ports for the private test brokers (their own state dir, restarted on the same ports)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port_pair"]

_LOWEST = 15000


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A port p with p (client) and p+1 (controller) both free, below the kernel's ephemeral
    range. Inside it, a client's outgoing connection (often to that very broker, retrying
    while it restarts) can take p+1 as its local port between a stop and a start, and the
    broker then dies on "Address already in use" (seen once in CI on a --fresh restart)."""
    top = _ephemeral_floor() - 2
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(_LOWEST, top) if top > _LOWEST else rng.randrange(1025, 65000)
        if _bindable(port) and _bindable(port + 1):
            return port
    raise RuntimeError("no free port pair")
