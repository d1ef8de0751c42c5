"""The OTLP signals the collector accepts: their endpoints, messages and tables."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as mpb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tpb


@dataclass(frozen=True)
class Signal:
    name: str
    http_path: str
    grpc_service: str
    request_type: type[Message]
    response_type: type[Message]
    table: str
    rejected_field: str  # field of partial_success holding the rejected count


TRACES = Signal("traces", "/v1/traces", "opentelemetry.proto.collector.trace.v1.TraceService",
                tpb.ExportTraceServiceRequest, tpb.ExportTraceServiceResponse, "spans",
                "rejected_spans")
METRICS = Signal("metrics", "/v1/metrics",
                 "opentelemetry.proto.collector.metrics.v1.MetricsService",
                 mpb.ExportMetricsServiceRequest, mpb.ExportMetricsServiceResponse,
                 "metric_points", "rejected_data_points")
SIGNALS = {s.http_path: s for s in (TRACES, METRICS)}
SIGNALS_BY_NAME = {s.name: s for s in (TRACES, METRICS)}
