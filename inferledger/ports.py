"""Before a server starts anything, make sure its ports are free, and say who holds one.

A port another process listens on is a one-line :class:`PortBusy` naming the port, what it
was for, and the holder (PID and command line, where the system lets us see them). The check
binds each port the way our servers do: gRPC's default ``SO_REUSEPORT`` would otherwise let
a second collector share the first one's port and split its traffic without a word.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

import psutil

from inferledger.errors import UserError


class PortBusy(UserError):
    """A port this command needs is taken."""


def holder(port: int) -> str:
    """Who listens on ``port``: ``pid 123 (inferledger collector …)``, or '' if unknown."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return ""
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            try:
                cmd = " ".join(psutil.Process(c.pid).cmdline()) or psutil.Process(c.pid).name()
            except psutil.Error:
                cmd = ""
            return f"pid {c.pid}" + (f" ({_short(cmd)})" if cmd else "")
    return ""


def _short(cmd: str, limit: int = 120) -> str:
    """A command line fit for one line of a message."""
    cmd = " ".join(cmd.split()).replace(" -m commands ", " inferledger ")
    return cmd if len(cmd) <= limit else cmd[:limit - 1] + "…"


def ensure_free(host: str, ports: Iterable[tuple[int, str]]) -> None:
    """Raise :class:`PortBusy` for the first of ``ports`` ((port, what it is for)) that
    cannot be bound on ``host``; port 0 (any free port) is always fine."""
    seen: dict[int, str] = {}
    for port, what in ports:
        if not port:
            continue
        if port in seen:
            raise PortBusy(f"port {port} is given twice: for {seen[port]} and for {what}")
        seen[port] = what
        try:
            infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        except socket.gaierror as e:
            raise PortBusy(f"cannot listen on {host!r} for {what}: {e.strerror}") from None
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(address)
            except OSError as e:
                by = holder(port)
                raise PortBusy(f"port {port} on {host} ({what}) is taken"
                               + (f" by {by}" if by else f": {e.strerror}")
                               + "; stop that process or choose another port") from None
