"""One process at a time: an exclusive lock on a file, released when the holder exits.

``flock`` locks die with their process (``kill -9`` included), so a crash never leaves a
stale lock to clean by hand. The holder writes its PID and command line into the file, so a
second process can say who it is waiting for or refusing because of.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

from inferledger.errors import UserError


class Busy(UserError):
    """Another process holds the lock."""


class ProcessLock:
    """``what`` names the job the lock guards, for messages ("the collector of /data")."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what
        self._fd: int | None = None

    def holder(self) -> str:
        """``pid 123 (inferledger collector …)`` of whoever holds (or last held) the lock."""
        try:
            line = self.path.read_text().strip()
        except OSError:
            return "another process"
        pid, _, cmd = line.partition(" ")
        return f"pid {pid}" + (f" ({cmd})" if cmd else "") if pid.isdigit() else "another process"

    def acquire(self, wait_s: float = 0.0, hint: str = "") -> ProcessLock:
        """Take the lock, waiting up to ``wait_s``; else :class:`Busy` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise Busy(f"{self.what} is already held by {self.holder()}"
                               + (f"; {hint}" if hint else "")) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        cmd = " ".join(" ".join(["inferledger", *sys.argv[1:]]).split())[:200]
        os.write(fd, f"{os.getpid()} {cmd}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def probe(self, hint: str = "") -> None:
        """Raise :class:`Busy` if someone holds the lock now; hold nothing afterwards."""
        self.acquire(0.0, hint).release()

    def __enter__(self) -> ProcessLock:
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()
