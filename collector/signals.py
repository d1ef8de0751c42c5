"""The OTLP signals the collector accepts, and the one ingest path both receivers share."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as mpb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tpb

from collector.batcher import DurableBatcher
from collector.processors.metrics import flatten_metrics
from collector.processors.traces import flatten_traces

if TYPE_CHECKING:
    from collector.telemetry import Telemetry


@dataclass(frozen=True)
class Signal:
    name: str
    http_path: str
    request_type: type[Message]
    response_type: type[Message]
    # (request, the request's bytes as received if at hand) → (rows, rejected, message)
    flatten: Callable[[Message, bytes | None], tuple[pa.Table, int, str]]
    table: str
    rejected_field: str  # field of partial_success holding the rejected count


TRACES = Signal("traces", "/v1/traces", tpb.ExportTraceServiceRequest,
                tpb.ExportTraceServiceResponse, flatten_traces, "spans", "rejected_spans")
METRICS = Signal("metrics", "/v1/metrics", mpb.ExportMetricsServiceRequest,
                 mpb.ExportMetricsServiceResponse, flatten_metrics, "metric_points",
                 "rejected_data_points")
SIGNALS = {s.http_path: s for s in (TRACES, METRICS)}


class NotDurable(RuntimeError):
    """The batch could not be made durable in time; it was not acknowledged."""


def ingest(signal: Signal, request: Message, batcher: DurableBatcher,
           telemetry: Telemetry | None = None, timeout_s: float = 30.0,
           raw: bytes | None = None) -> Message:
    """Flatten, hand to the batcher, wait until durable; return the OTLP response message.

    ``raw``: the serialized request as received, when the receiver has it.
    Raises :class:`Overloaded` (retry later) or :class:`NotDurable` (write failed/timed out).
    """
    rows, rejected, message = signal.flatten(request, raw)
    if rows.num_rows:
        future = batcher.submit(signal.table, rows)
        try:
            future.result(timeout=timeout_s)
        except FutureTimeout as e:
            raise NotDurable(f"write not confirmed within {timeout_s:.0f}s") from e
        except Exception as e:
            raise NotDurable(f"write failed: {e}") from e
    if telemetry is not None:
        telemetry.ingested(signal.name, rows.num_rows, rejected, rows)
    response = signal.response_type()
    if rejected:
        ps = response.partial_success
        setattr(ps, signal.rejected_field, rejected)
        ps.error_message = message
    return response
