"""``ExportMetricsServiceRequest`` → rows of ``raw/metric_points``.

Gauges and sums keep one row per data point; histograms keep count and sum (bucket detail
is not needed by any analytics yet). Summary and exponential-histogram points are rejected
with a partial-success message rather than silently dropped.
"""

from __future__ import annotations

import time

import pyarrow as pa
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from collector.processors.anyvalue import attr_map
from inferledger.store.raw_schema import METRIC_POINTS


def _number(point) -> float | None:
    kind = point.WhichOneof("value")
    if kind == "as_double":
        return point.as_double
    if kind == "as_int":
        return float(point.as_int)
    return None


def flatten_metrics(req: ExportMetricsServiceRequest, raw: bytes | None = None
                    ) -> tuple[pa.Table, int, str]:
    """Return (rows, rejected data point count, message); read through protobuf's objects
    (metrics come a few hundred points at a time), so ``raw`` is not needed."""
    cols: dict[str, list] = {f.name: [] for f in METRIC_POINTS}
    rejected = 0
    now = time.time_ns()

    def add(metric, mtype, monotonic, point, value, count, service, host, scope, res):
        cols["metric_name"].append(metric.name)
        cols["unit"].append(metric.unit or None)
        cols["metric_type"].append(mtype)
        cols["is_monotonic"].append(monotonic)
        cols["time_unix_nano"].append(point.time_unix_nano)
        cols["start_time_unix_nano"].append(point.start_time_unix_nano or None)
        cols["value"].append(value)
        cols["count"].append(count)
        cols["service_name"].append(service)
        cols["host_name"].append(host)
        cols["scope_name"].append(scope)
        cols["resource_attributes"].append(res)
        cols["attributes"].append(attr_map(point.attributes))
        cols["received_at_unix_nano"].append(now)

    for rm in req.resource_metrics:
        res = attr_map(rm.resource.attributes)
        service, host = res.get("service.name"), res.get("host.name")
        for sm in rm.scope_metrics:
            scope = sm.scope.name or None
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind in ("gauge", "sum"):
                    data = getattr(metric, kind)
                    monotonic = bool(data.is_monotonic) if kind == "sum" else None
                    for p in data.data_points:
                        value = _number(p)
                        if value is None or p.time_unix_nano == 0:
                            rejected += 1
                            continue
                        add(metric, kind, monotonic, p, value, None, service, host, scope, res)
                elif kind == "histogram":
                    for p in metric.histogram.data_points:
                        if p.time_unix_nano == 0:
                            rejected += 1
                            continue
                        add(metric, "histogram", None, p, p.sum if p.HasField("sum") else None,
                            p.count, service, host, scope, res)
                else:
                    n = len(getattr(metric, kind).data_points) if kind else 0
                    rejected += n
    message = (
        f"{rejected} data point(s) rejected (missing value or time, or unsupported type)"
        if rejected else ""
    )
    return pa.Table.from_pydict(cols, schema=METRIC_POINTS), rejected, message
