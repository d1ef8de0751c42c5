"""Child processes that start, report and stop together.

Children run in their own session (a terminal's Ctrl-C reaches only the parent, which then
stops them in order) and get SIGTERM if the parent dies, so none is ever orphaned.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger("inferledger.procs")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class Supervisor:
    def __init__(self) -> None:
        self.children: list[Child] = []

    def spawn(self, name: str, args: Sequence[str], env: dict[str, str] | None = None,
              nice: int = 0) -> Child:
        """Run ``inferledger ARGS…`` with this interpreter, ``nice`` below this process's
        CPU priority."""
        cmd = [sys.executable, "-m", "commands", *args]

        def setup() -> None:
            _die_with_parent()
            if nice:
                os.nice(nice)

        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})},
                                start_new_session=True, preexec_fn=setup)
        child = Child(name, proc)
        self.children.append(child)
        log.debug("started %s (pid %d): %s", name, proc.pid, " ".join(cmd))
        return child

    def failed(self) -> Child | None:
        """The first child that exited on its own, if any."""
        return next((c for c in self.children if not c.alive), None)

    def stop(self, child: Child, timeout_s: float = 10.0) -> int | None:
        if child.alive:
            terminate(child.proc, timeout_s, child.name)
        if child in self.children:
            self.children.remove(child)
        return child.proc.returncode

    def stop_all(self, timeout_s: float = 10.0) -> None:
        for child in reversed(list(self.children)):
            self.stop(child, timeout_s)


def terminate(proc: subprocess.Popen, timeout_s: float = 10.0, name: str = "") -> int:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout_s``."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop in %.0fs; killing it", name or proc.pid, timeout_s)
        proc.kill()
        return proc.wait()


def wait_for_port(host: str, port: int, timeout_s: float = 30.0,
                  child: Child | None = None) -> None:
    """Block until something listens on host:port; fail early if ``child`` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and not child.alive:
            raise RuntimeError(f"{child.name} exited with code {child.proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:.0f}s")


def wait_for_health(url: str, timeout_s: float = 60.0) -> None:
    """Block until ``url`` answers 200 (e.g. Streamlit's ``/_stcore/health``)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {timeout_s:.0f}s")


def install_stop_handlers(handler) -> None:
    """Call ``handler`` on SIGINT and SIGTERM instead of raising KeyboardInterrupt."""
    signal.signal(signal.SIGINT, lambda *_: handler())
    signal.signal(signal.SIGTERM, lambda *_: handler())
