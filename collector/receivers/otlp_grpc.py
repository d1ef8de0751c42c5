"""OTLP/gRPC receiver (traces and metrics) on the same jobs as HTTP.

The services are registered with generic handlers that take the request's bytes as they
arrived (gRPC has already undone its own compression and applied the size limit): decoding
is the job's, in whichever process runs it, so nothing is parsed twice.
"""

from __future__ import annotations

from concurrent import futures
from typing import TYPE_CHECKING

import grpc

from collector import jobs
from collector.receivers.otlp_http import MAX_IN_FLIGHT
from collector.receivers.security import Security
from collector.signals import METRICS, TRACES, Signal

if TYPE_CHECKING:
    from collector.telemetry import Telemetry
    from collector.workers import Ingest

_CODES = {jobs.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
          jobs.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
          # UNAVAILABLE is retryable for OTLP exporters (the spec's back-pressure signal).
          jobs.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
          jobs.INTERNAL: grpc.StatusCode.INTERNAL}


def _service(signal: Signal, ingest: Ingest,
             telemetry: Telemetry | None) -> grpc.GenericRpcHandler:
    def export(body: bytes, context: grpc.ServicerContext) -> bytes:
        outcome = ingest.submit(jobs.Job(signal.name, body))
        if telemetry is not None:
            telemetry.record(signal.name, outcome)
        if outcome.status != jobs.OK:
            context.abort(_CODES[outcome.status], outcome.message)
        return outcome.response

    # No (de)serializers: the handler gets and returns the messages' bytes.
    return grpc.method_handlers_generic_handler(
        signal.grpc_service, {"Export": grpc.unary_unary_rpc_method_handler(export)})


def start_grpc(address: str, ingest: Ingest, security: Security | None = None,
               telemetry: Telemetry | None = None) -> tuple[grpc.Server, int]:
    """Start the server on ``address`` (``host:port``; port 0 picks one); return it and the port."""
    security = security or Security()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="otlp-grpc"),
        handlers=[_service(s, ingest, telemetry) for s in (TRACES, METRICS)],
        # No SO_REUSEPORT (gRPC's default on Linux): a second collector on this port must
        # fail, not silently take half of the first one's traffic.
        options=[("grpc.max_receive_message_length", jobs.MAX_BODY_BYTES),
                 ("grpc.so_reuseport", 0)],
        # Past this, RESOURCE_EXHAUSTED at once (retryable for OTLP exporters), not a queue.
        maximum_concurrent_rpcs=2 * MAX_IN_FLIGHT,
        interceptors=security.grpc_interceptors(),
    )
    creds = security.grpc_credentials()
    port = (server.add_insecure_port(address) if creds is None
            else server.add_secure_port(address, creds))
    if port == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {address}")
    server.start()
    return server, port
