"""OTLP/HTTP receiver (protobuf and JSON, gzip, size limits, back-pressure).

Status codes follow the OTLP specification: 400 + ``google.rpc.Status`` for bad data (not
retried by clients), 413 for bodies over the limit after decompression, 415 for unknown
content types or encodings, 401 without the configured bearer token, 503 + ``Retry-After``
under back-pressure, and 200 with ``partial_success`` when some items were rejected.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from collector import jobs
from collector.receivers.security import Security
from collector.signals import SIGNALS, Signal

if TYPE_CHECKING:
    from collector.telemetry import Telemetry
    from collector.workers import Ingest

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 8  # requests being decoded and written at once; past it, 503 at once
# A body over the limit is still read (and dropped) up to this size after the 413 is sent:
# clients that write the whole body before reading (Python's urllib) would otherwise get a
# broken pipe instead of the answer. Past it the connection is closed.
MAX_DRAIN_BYTES = 64 * 1024 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# An outcome → HTTP status and google.rpc code (OTLP/HTTP specification).
_CODES = {jobs.INVALID: (400, code_pb2.INVALID_ARGUMENT),
          jobs.TOO_LARGE: (413, code_pb2.INVALID_ARGUMENT),
          jobs.UNAVAILABLE: (503, code_pb2.UNAVAILABLE),
          jobs.INTERNAL: (500, code_pb2.INTERNAL)}


class _Handler(BaseHTTPRequestHandler):
    server: OtlpHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _reply(self, code: int, body: bytes, content_type: str,
               headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            log.info("client %s went away before its %d reply", self.address_string(), code)

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue`` with a body over the limit: answer 413 before the client
        sends it (curl does this for large bodies)."""
        if self._too_large(self._length()):
            self.close_connection = True
            return False
        return super().handle_expect_100()

    def _length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return -1

    def _too_large(self, length: int) -> bool:
        """Answer 413 (and read the body away, up to a bound) if ``length`` is over the limit."""
        if length <= jobs.MAX_BODY_BYTES:
            return False
        self.close_connection = True
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        self._status(413, code_pb2.INVALID_ARGUMENT,
                     f"body of {length} bytes exceeds {jobs.MAX_BODY_BYTES}",
                     JSON if ctype == JSON else PROTOBUF)
        if length <= MAX_DRAIN_BYTES and "100-continue" not in (
                self.headers.get("Expect") or "").lower():
            self._discard(length)
        return True

    def _status(self, http_code: int, rpc_code: int, message: str, content_type: str,
                headers: dict[str, str] | None = None) -> None:
        status = status_pb2.Status(code=rpc_code, message=message)
        body = (json_format.MessageToJson(status).encode() if content_type == JSON
                else status.SerializeToString())
        self._reply(http_code, body, content_type, headers)

    def _response(self, signal: Signal, response: bytes, content_type: str) -> None:
        if content_type == JSON:
            message = signal.response_type.FromString(response)
            response = json_format.MessageToJson(message, indent=None).encode()
        self._reply(200, response, content_type)

    def do_POST(self) -> None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        reply_type = JSON if ctype == JSON else PROTOBUF
        signal = SIGNALS.get(self.path.split("?")[0])
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            # Never read as empty and acknowledged: ask for a sized body instead.
            self.close_connection = True
            self._status(411, code_pb2.INVALID_ARGUMENT,
                         "chunked bodies are not accepted; send Content-Length", reply_type)
            return
        length = self._length()
        if length < 0:
            self.close_connection = True
            self._status(400, code_pb2.INVALID_ARGUMENT, "bad Content-Length", reply_type)
            return
        if self._too_large(length):
            return
        if not self.server.security.authorized(self.headers.get("Authorization")):
            self._discard(length)
            self._status(401, code_pb2.UNAUTHENTICATED, "missing or wrong bearer token",
                         reply_type, {"WWW-Authenticate": "Bearer"})
            return
        if not self.server.slots.acquire(blocking=False):
            # Overload: ask the client to retry, as OTLP exporters do on 503.
            self._discard(length)
            self.server.throttled += 1
            self._status(503, code_pb2.UNAVAILABLE, "collector busy; retry later", reply_type,
                         {"Retry-After": str(jobs.RETRY_AFTER_S)})
            return
        try:
            self._handle(signal, ctype, reply_type, self.rfile.read(length) if length else b"")
        finally:
            self.server.slots.release()

    def _discard(self, length: int) -> None:
        """Read a refused body away in small pieces: memory stays flat, the connection usable."""
        try:
            while length > 0 and (chunk := self.rfile.read(min(length, 65536))):
                length -= len(chunk)
        except (ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _handle(self, signal: Signal | None, ctype: str, reply_type: str, raw: bytes) -> None:
        if signal is None:
            self._status(404, code_pb2.NOT_FOUND,
                         f"{self.path}: this collector accepts /v1/traces and /v1/metrics "
                         "(logs are not accepted)", reply_type)
            return
        if ctype not in (PROTOBUF, JSON):
            self._status(415, code_pb2.INVALID_ARGUMENT,
                         f"unsupported Content-Type {ctype!r}; use {PROTOBUF} or {JSON}",
                         reply_type)
            return
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("gzip", "identity", "none", ""):
            self._status(415, code_pb2.INVALID_ARGUMENT,
                         f"unsupported Content-Encoding {encoding!r}", reply_type)
            return
        outcome = self.server.ingest.submit(
            jobs.Job(signal.name, raw, json=ctype == JSON, gzip=encoding == "gzip"))
        if self.server.telemetry is not None:
            self.server.telemetry.record(signal.name, outcome)
        if outcome.status == jobs.OK:
            self._response(signal, outcome.response, reply_type)
            return
        http_code, rpc_code = _CODES[outcome.status]
        retry = {"Retry-After": str(jobs.RETRY_AFTER_S)} if http_code == 503 else None
        self._status(http_code, rpc_code, outcome.message, reply_type, retry)


class OtlpHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], ingest: Ingest,
                 max_in_flight: int = MAX_IN_FLIGHT, security: Security | None = None,
                 telemetry: Telemetry | None = None) -> None:
        super().__init__(address, _Handler)
        self.ingest, self.telemetry = ingest, telemetry
        self.slots = threading.BoundedSemaphore(max_in_flight)
        self.throttled = 0
        self.security = security or Security()
        tls = self.security.server_context()
        if tls is not None:  # handshake later, in the request's thread (finish_request)
            self.socket = tls.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)

    def finish_request(self, request: socket.socket, client_address: tuple) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(10)
                request.do_handshake()
                request.settimeout(None)
            except OSError as e:  # ssl.SSLError included: not our client, or not TLS
                log.info("TLS handshake with %s failed: %s", client_address[0], e)
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: object, client_address: tuple) -> None:
        """A client that hangs up or stalls is normal: one line. Anything else is ours."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.info("connection from %s ended: %s", client_address[0], exc)
        else:
            log.exception("OTLP/HTTP request from %s failed", client_address[0])

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                             name="otlp-http", daemon=True)
        t.start()
        return t
