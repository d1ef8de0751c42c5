"""OTLP exporters built the same way by every InferLedger component.

``protocol`` is ``grpc`` (port 4317, what vLLM uses by default) or ``http/protobuf`` (4318).
Without an explicit endpoint the SDK's standard ``OTEL_EXPORTER_OTLP_*`` variables apply.
"""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

PROTOCOLS = ("grpc", "http/protobuf")


def _check(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"OTLP protocol {protocol!r} is not one of {PROTOCOLS}")


def span_exporter(endpoint: str | None, protocol: str = "grpc") -> SpanExporter:
    _check(protocol)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces" if endpoint else None)


def metric_exporter(endpoint: str | None, protocol: str = "http/protobuf") -> MetricExporter:
    _check(protocol)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter(endpoint=f"{endpoint.rstrip('/')}/v1/metrics" if endpoint else None)
