"""Free loopback ports for tests that start servers on fixed ports."""

from __future__ import annotations

import random
import socket


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_block(n: int) -> int:
    """First of ``n`` consecutive free ports, below the ephemeral range.

    Above it, the stack's own outgoing connections could take a port between this check and
    the server's bind.
    """
    top = min(_ephemeral_low(), 65536) - n - 1
    for _ in range(200):
        base = random.randint(min(20000, top // 2), top)
        if all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free port block")
