"""OTLP exporters built the same way by every InferLedger component.

``protocol`` is ``grpc`` (port 4317, what vLLM uses by default) or ``http/protobuf`` (4318).
Without an explicit endpoint the SDK's standard ``OTEL_EXPORTER_OTLP_*`` variables apply.
"""

from __future__ import annotations

import importlib
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

from inferledger.errors import UserError

PROTOCOLS = ("grpc", "http/protobuf")
_MODULES = {"grpc": "opentelemetry.exporter.otlp.proto.grpc.{}_exporter",
            "http/protobuf": "opentelemetry.exporter.otlp.proto.http.{}_exporter"}


def _exporter(signal: str, cls: str, endpoint: str | None, protocol: str) -> Any:
    if protocol not in PROTOCOLS:
        raise UserError(f"OTLP protocol {protocol!r} is not one of {PROTOCOLS}")
    exporter = getattr(importlib.import_module(_MODULES[protocol].format(signal)), cls)
    if protocol == "grpc":
        return exporter(endpoint=endpoint, insecure=True)
    path = "traces" if signal == "trace" else "metrics"
    return exporter(endpoint=f"{endpoint.rstrip('/')}/v1/{path}" if endpoint else None)


def span_exporter(endpoint: str | None, protocol: str = "grpc") -> SpanExporter:
    return _exporter("trace", "OTLPSpanExporter", endpoint, protocol)


def metric_exporter(endpoint: str | None, protocol: str = "http/protobuf") -> MetricExporter:
    return _exporter("metric", "OTLPMetricExporter", endpoint, protocol)
