"""``ExportTraceServiceRequest`` → rows of ``raw/spans``."""

from __future__ import annotations

import json
import time

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.processors.anyvalue import attr_map
from inferledger.store.raw_schema import SPANS


def _resource_fields(attrs: dict[str, str | None]) -> tuple[str | None, str | None]:
    return attrs.get("service.name"), attrs.get("host.name")


def flatten_traces(req: ExportTraceServiceRequest) -> tuple[pa.Table, int, str]:
    """Return (rows, rejected span count, message). Spans with invalid ids are rejected."""
    rows = []  # (span, resource attributes, service, host, scope name)
    rejected = 0
    for rs in req.resource_spans:
        res = attr_map(rs.resource.attributes)
        service, host = _resource_fields(res)
        for ss in rs.scope_spans:
            scope = ss.scope.name or None
            for sp in ss.spans:
                if len(sp.trace_id) != 16 or len(sp.span_id) != 8 or not any(sp.trace_id):
                    rejected += 1
                else:
                    rows.append((sp, res, service, host, scope))
    spans = [r[0] for r in rows]
    # Column by column: list comprehensions are the fast way to walk protobuf in Python.
    cols = {
        "trace_id": [sp.trace_id.hex() for sp in spans],
        "span_id": [sp.span_id.hex() for sp in spans],
        "parent_span_id": [sp.parent_span_id.hex() or None for sp in spans],
        "name": [sp.name for sp in spans],
        "kind": [sp.kind for sp in spans],
        "start_time_unix_nano": [sp.start_time_unix_nano for sp in spans],
        "end_time_unix_nano": [sp.end_time_unix_nano for sp in spans],
        "status_code": [sp.status.code for sp in spans],
        "status_message": [sp.status.message or None for sp in spans],
        "service_name": [r[2] for r in rows],
        "host_name": [r[3] for r in rows],
        "scope_name": [r[4] for r in rows],
        "resource_attributes": [r[1] for r in rows],
        "attributes": [attr_map(sp.attributes) for sp in spans],
        "events_json": [_events(sp) if len(sp.events) else None for sp in spans],
        "received_at_unix_nano": [time.time_ns()] * len(spans),
    }
    message = (f"{rejected} span(s) rejected: trace_id must be 16 non-zero bytes, span_id 8"
               if rejected else "")
    return pa.Table.from_pydict(cols, schema=SPANS), rejected, message


def _events(sp: Span) -> str:
    return json.dumps([{"name": e.name, "time_unix_nano": e.time_unix_nano,
                        "attributes": attr_map(e.attributes)} for e in sp.events])
