"""Shared by the benchmarks: a real collector process on free ports, and a dashboard."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inferledger.procs import terminate, wait_for_health, wait_for_port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def collector(root: Path) -> Iterator[str]:
    """``inferledger collector`` writing ``root``; yields its OTLP/HTTP base URL."""
    http_port, grpc_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands", "collector", "--data", str(root),
         "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", http_port, 30)
        yield f"http://127.0.0.1:{http_port}"
    finally:
        terminate(proc, 60)


@contextmanager
def dashboard(root: Path) -> Iterator[str]:
    """``inferledger dashboard`` on ``root``; yields its URL once healthy."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "commands", "dashboard", "--data",
                             str(root), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(f"{url}/_stcore/health")
        yield url
    finally:
        terminate(proc, 30)
