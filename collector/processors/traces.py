"""``ExportTraceServiceRequest`` → rows of ``raw/spans``."""

from __future__ import annotations

import json
import time

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.processors.anyvalue import attr_map
from inferledger.store.raw_schema import SPANS


def _resource_fields(resource_attrs: list[tuple[str, str | None]]) -> tuple[str | None, str | None]:
    d = dict(resource_attrs)
    return d.get("service.name"), d.get("host.name")


def flatten_traces(req: ExportTraceServiceRequest) -> tuple[pa.Table, int, str]:
    """Return (rows, rejected span count, message). Spans with invalid ids are rejected."""
    cols: dict[str, list] = {f.name: [] for f in SPANS}
    rejected = 0
    now = time.time_ns()
    for rs in req.resource_spans:
        res = attr_map(rs.resource.attributes)
        service, host = _resource_fields(res)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                if len(sp.trace_id) != 16 or len(sp.span_id) != 8 or not any(sp.trace_id):
                    rejected += 1
                    continue
                cols["trace_id"].append(sp.trace_id.hex())
                cols["span_id"].append(sp.span_id.hex())
                cols["parent_span_id"].append(sp.parent_span_id.hex() or None)
                cols["name"].append(sp.name)
                cols["kind"].append(int(sp.kind))
                cols["start_time_unix_nano"].append(sp.start_time_unix_nano)
                cols["end_time_unix_nano"].append(sp.end_time_unix_nano)
                cols["status_code"].append(int(sp.status.code))
                cols["status_message"].append(sp.status.message or None)
                cols["service_name"].append(service)
                cols["host_name"].append(host)
                cols["scope_name"].append(ss.scope.name or None)
                cols["resource_attributes"].append(res)
                cols["attributes"].append(attr_map(sp.attributes))
                events = [
                    {"name": e.name, "time_unix_nano": e.time_unix_nano,
                     "attributes": dict(attr_map(e.attributes))}
                    for e in sp.events
                ]
                cols["events_json"].append(json.dumps(events) if events else None)
                cols["received_at_unix_nano"].append(now)
    message = (f"{rejected} span(s) rejected: trace_id must be 16 non-zero bytes, span_id 8"
               if rejected else "")
    return pa.Table.from_pydict(cols, schema=SPANS), rejected, message
