"""Shared by the benchmarks: a real collector process on free ports, and a dashboard."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from inferledger.procs import wait_for_port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def collector(root: Path) -> Iterator[str]:
    """``inferledger collector`` writing ``root``; yields its OTLP/HTTP base URL."""
    http_port, grpc_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferledger", "collector", "--data", str(root),
         "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", http_port, 30)
        yield f"http://127.0.0.1:{http_port}"
    finally:
        proc.terminate()
        proc.wait(60)


@contextmanager
def dashboard(root: Path) -> Iterator[str]:
    """``inferledger dashboard`` on ``root``; yields its URL once healthy."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "inferledger", "dashboard", "--data",
                             str(root), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
