"""OTLP/gRPC receiver (traces and metrics) on the same ingest path as HTTP."""

from __future__ import annotations

from concurrent import futures
from typing import TYPE_CHECKING

import grpc
from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as mgrpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tgrpc

from collector.batcher import DurableBatcher, Overloaded
from collector.receivers.otlp_http import MAX_BODY_BYTES, MAX_IN_FLIGHT
from collector.receivers.security import Security
from collector.signals import METRICS, TRACES, NotDurable, Signal, ingest

if TYPE_CHECKING:
    from collector.telemetry import Telemetry


class _Service:
    def __init__(self, batcher: DurableBatcher, telemetry: Telemetry | None) -> None:
        self.batcher, self.telemetry = batcher, telemetry

    def _export(self, signal: Signal, request: Message, context: grpc.ServicerContext) -> Message:
        try:
            return ingest(signal, request, self.batcher, self.telemetry)
        except (Overloaded, NotDurable) as e:
            # UNAVAILABLE is retryable for OTLP exporters (the spec's back-pressure signal).
            context.abort(grpc.StatusCode.UNAVAILABLE, str(e))


class _Traces(_Service, tgrpc.TraceServiceServicer):
    def Export(self, request, context):  # noqa: N802 - gRPC method name
        return self._export(TRACES, request, context)


class _Metrics(_Service, mgrpc.MetricsServiceServicer):
    def Export(self, request, context):  # noqa: N802 - gRPC method name
        return self._export(METRICS, request, context)


def start_grpc(address: str, batcher: DurableBatcher, security: Security | None = None,
               telemetry: Telemetry | None = None) -> tuple[grpc.Server, int]:
    """Start the server on ``address`` (``host:port``; port 0 picks one); return it and the port."""
    security = security or Security()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="otlp-grpc"),
        options=[("grpc.max_receive_message_length", MAX_BODY_BYTES)],
        # Past this, RESOURCE_EXHAUSTED at once (retryable for OTLP exporters), not a queue.
        maximum_concurrent_rpcs=2 * MAX_IN_FLIGHT,
        interceptors=security.grpc_interceptors(),
    )
    tgrpc.add_TraceServiceServicer_to_server(_Traces(batcher, telemetry), server)
    mgrpc.add_MetricsServiceServicer_to_server(_Metrics(batcher, telemetry), server)
    creds = security.grpc_credentials()
    port = (server.add_insecure_port(address) if creds is None
            else server.add_secure_port(address, creds))
    if port == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {address}")
    server.start()
    return server, port
