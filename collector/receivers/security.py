"""Optional bearer-token authentication and TLS for both OTLP receivers.

Off by default, for a collector on loopback. A token is compared in constant time and never
logged or stored. With TLS, the HTTP handshake runs in the request's own thread, so a slow
or silent client cannot stall the listener.
"""

from __future__ import annotations

import hmac
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from inferledger.errors import UserError

log = logging.getLogger("inferledger.collector")


@dataclass(frozen=True)
class Security:
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UserError("TLS needs both a certificate and its key")
        if self.token is not None and not self.token.strip():
            raise UserError("the bearer token is empty")

    @classmethod
    def from_files(cls, token_file: Path | None, tls_cert: Path | None,
                   tls_key: Path | None) -> Security:
        token = token_file.read_text().strip() if token_file is not None else None
        return cls(token, tls_cert, tls_key)

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header value carries the token (always, without one)."""
        if self.token is None:
            return True
        scheme, _, value = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                                  self.token.encode())

    def server_context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.tls_cert, self.tls_key)
        return ctx

    def grpc_credentials(self) -> grpc.ServerCredentials | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        return grpc.ssl_server_credentials([(self.tls_key.read_bytes(),
                                             self.tls_cert.read_bytes())])

    def grpc_interceptors(self) -> list[grpc.ServerInterceptor]:
        return [] if self.token is None else [_TokenInterceptor(self)]

    def warn_if_exposed(self, host: str) -> None:
        if host not in ("127.0.0.1", "localhost", "::1") and self.token is None:
            log.warning("listening on %s without a bearer token: anyone who can reach it may "
                        "write to the store (see --auth-token-file)", host)


class _TokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, security: Security) -> None:
        self.security = security

        def deny(_request: object, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation: Callable[[Any], grpc.RpcMethodHandler],
                          handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        header = dict(handler_call_details.invocation_metadata).get("authorization")
        if self.security.authorized(header):
            return continuation(handler_call_details)
        return self._deny
