"""``inferledger gateway``: the proxy wrapped in the tracing middleware, served by uvicorn."""

from __future__ import annotations

import dataclasses
import logging

import uvicorn

from agents.gateway.proxy import build_gateway
from agents.gateway.upstreams import Pool
from agents.tracing.config import MiddlewareConfig
from agents.tracing.middleware import InferLedgerMiddleware
from inferledger.errors import UserError
from inferledger.ports import ensure_free

log = logging.getLogger("inferledger.gateway")


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def serve_gateway(listen: str, upstreams: list[str], *, otlp_endpoint: str | None,
                  otlp_protocol: str | None, timeout_s: float, health_interval_s: float,
                  route_by: str = "outstanding") -> None:
    host, port = parse_listen(listen)
    ensure_free(host, [(port, "the gateway")])
    pool = Pool(upstreams, interval_s=health_interval_s, route_by=route_by)
    cfg = MiddlewareConfig.from_env()
    cfg = dataclasses.replace(cfg, endpoint=otlp_endpoint or cfg.endpoint,
                              protocol=otlp_protocol or cfg.protocol)
    app = InferLedgerMiddleware(build_gateway(pool, timeout_s=timeout_s), cfg, source="gateway")
    log.info("gateway on http://%s:%d/v1 → %s", host, port, ", ".join(pool.urls))
    try:
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                      access_log=False)).run()
    finally:
        app.tracer_provider.shutdown()  # export the last spans
