"""Middleware settings, from environment variables (vLLM constructs it with no arguments).

=====================================  ==========================================================
``INFERLEDGER_OTLP_ENDPOINT``          collector address (default: where vLLM sends its spans)
``INFERLEDGER_OTLP_PROTOCOL``          ``grpc`` or ``http/protobuf`` (default: see below)
``INFERLEDGER_TENANT_HEADER``          request header naming the tenant (default ``x-tenant``)
``INFERLEDGER_ROUTE_HEADER``           request header naming the app/route (default ``x-route``)
``INFERLEDGER_TENANT_HASH_KEY``        secret for hashing API keys into tenant ids
``INFERLEDGER_HOST``                   host name reported for placement (default: hostname)
``INFERLEDGER_GPU_BACKEND``            ``nvml``, ``sim:PATH``, ``none``: GPU lookup (placement)
``INFERLEDGER_REQUEST_USAGE``          ask vLLM for stream usage and strip it (default ``true``)
=====================================  ==========================================================

Without ``INFERLEDGER_OTLP_ENDPOINT`` the middleware sends where vLLM sends its own spans, by
vLLM's rule: ``--otlp-traces-endpoint`` becomes ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` in the
server's environment, spoken in ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` (default ``grpc``, as
vLLM's). With it, the protocol defaults to ``http/protobuf`` (the collector's port 4318).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from inferledger.config import BOOLEAN, Kind, choice, resolve, text
from inferledger.otel import PROTOCOLS

log = logging.getLogger("inferledger.middleware")

_DEFAULT_HASH_KEY = "inferledger-default-tenant-key"
_TEXT = text()


@dataclass(frozen=True)
class MiddlewareConfig:
    endpoint: str | None = None
    protocol: str = "http/protobuf"
    tenant_header: str = "x-tenant"
    route_header: str = "x-route"
    hash_key: bytes = _DEFAULT_HASH_KEY.encode()
    host: str = field(default_factory=socket.gethostname)
    gpu_backend: str = "nvml"
    request_usage: bool = True

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> MiddlewareConfig:
        e = os.environ if env is None else env
        key = e.get("INFERLEDGER_TENANT_HASH_KEY")
        if key is None:
            log.warning("INFERLEDGER_TENANT_HASH_KEY is not set: API-key tenants are hashed "
                        "with a public default key")

        def var(name: str, kind: Kind = _TEXT, default: object = None) -> Any:
            return resolve(kind, env=e, var=name, default=default)

        endpoint = var("INFERLEDGER_OTLP_ENDPOINT")
        protocol = var("INFERLEDGER_OTLP_PROTOCOL", choice(*PROTOCOLS), None)
        if protocol is None and endpoint is None:  # vLLM's exporter settings, vLLM's default
            protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", choice(*PROTOCOLS), None) \
                or var("OTEL_EXPORTER_OTLP_PROTOCOL", choice(*PROTOCOLS), "grpc")
        return cls(
            endpoint=endpoint,
            protocol=protocol or "http/protobuf",
            tenant_header=var("INFERLEDGER_TENANT_HEADER", default="x-tenant").lower(),
            route_header=var("INFERLEDGER_ROUTE_HEADER", default="x-route").lower(),
            hash_key=(key or _DEFAULT_HASH_KEY).encode(),
            host=var("INFERLEDGER_HOST", default=None) or socket.gethostname(),
            gpu_backend=var("INFERLEDGER_GPU_BACKEND", default="nvml"),
            request_usage=var("INFERLEDGER_REQUEST_USAGE", BOOLEAN, True),
        )

    def tenant_from_api_key(self, api_key: str) -> str:
        """A stable tenant id that cannot be turned back into the key."""
        return "key-" + hmac.new(self.hash_key, api_key.encode(), hashlib.sha256).hexdigest()[:16]
