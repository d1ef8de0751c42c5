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


def free_block(n: int) -> int:
    """First of ``n`` consecutive free ports."""
    for _ in range(200):
        base = random.randint(20000, 60000)
        if all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free port block")
