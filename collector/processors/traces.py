"""``ExportTraceServiceRequest`` → rows of ``raw/spans``.

Two ways to the same rows: the compiled walk over the serialized request
(:mod:`collector.processors.trace_wire`, the hot path: ≈ 3 µs a span against ≈ 14) and the walk
through protobuf's objects, kept for what the compiled walk declines (wire-format groups)
and as the reference the tests hold it to.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from collector.processors import trace_wire as w
from collector.processors.anyvalue import attr_map, doubles_text, to_text
from inferledger.store.raw_schema import ATTRS, SPANS

REJECTED = "{} span(s) rejected: trace_id must be 16 non-zero bytes, span_id 8"


def flatten_traces(req: ExportTraceServiceRequest, raw: bytes | None = None
                   ) -> tuple[pa.Table, int, str]:
    """Return (rows, rejected span count, message). Spans with invalid ids are rejected.

    ``raw`` is the request as received, when the receiver has it (saves re-serializing).
    """
    body = req.SerializeToString() if raw is None else raw
    scanned = w.scan(body)
    if scanned is None:
        return flatten_traces_by_objects(req)
    return _from_scan(req, np.frombuffer(body, dtype=np.uint8), *scanned)


def _from_scan(req: ExportTraceServiceRequest, buf: np.ndarray, spans: np.ndarray,
               attrs: np.ndarray) -> tuple[pa.Table, int, str]:
    valid = (spans[:, w.S_TRACE + 1] == 16) & (spans[:, w.S_SPAN + 1] == 8)
    trace_bytes = buf[spans[valid, w.S_TRACE][:, None] + np.arange(16)]
    valid[valid] = trace_bytes.any(axis=1)
    rejected = int(len(spans) - valid.sum())
    rows = np.flatnonzero(valid)
    table, spans = spans, spans[rows]
    n = len(spans)
    scopes = [ss for rs in req.resource_spans for ss in rs.scope_spans]
    resources = [attr_map(rs.resource.attributes) for rs in req.resource_spans]
    resource = pa.array(spans[:, w.S_RESOURCE])
    scope = pa.array(spans[:, w.S_SCOPE])
    cols = {
        "trace_id": _hex(buf, spans, w.S_TRACE),
        "span_id": _hex(buf, spans, w.S_SPAN),
        "parent_span_id": _hex(buf, spans, w.S_PARENT),
        "name": _text(buf, spans, w.S_NAME, null_if_empty=False),
        "kind": pa.array(spans[:, w.S_KIND].astype(np.int32)),
        "start_time_unix_nano": pa.array(spans[:, w.S_START]),
        "end_time_unix_nano": pa.array(spans[:, w.S_END]),
        "status_code": pa.array(spans[:, w.S_CODE].astype(np.int32)),
        "status_message": _text(buf, spans, w.S_MESSAGE),
        "service_name": pa.array([r.get("service.name") for r in resources], pa.string()
                                 ).take(resource),
        "host_name": pa.array([r.get("host.name") for r in resources], pa.string()
                              ).take(resource),
        "scope_name": pa.array([ss.scope.name or None for ss in scopes], pa.string()
                               ).take(scope),
        "resource_attributes": pa.array(resources, ATTRS).take(resource),
        "attributes": _attributes(buf, table, rows, attrs, scopes),
        "events_json": _events_column(spans, scopes),
        "received_at_unix_nano": pa.array(np.full(n, time.time_ns(), dtype=np.int64)),
    }
    return (pa.Table.from_arrays(list(cols.values()), schema=SPANS), rejected,
            REJECTED.format(rejected) if rejected else "")


def _strings(data: np.ndarray, offsets: np.ndarray, valid: np.ndarray | None = None
             ) -> pa.Array:
    """An Arrow string array over gathered bytes (already valid UTF-8: protobuf checked)."""
    n = len(offsets) - 1
    bitmap, nulls = None, 0
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = int(n - valid.sum())
    return pa.Array.from_buffers(pa.string(), n, [bitmap, pa.py_buffer(offsets),
                                                  pa.py_buffer(data)], null_count=nulls)


def _text(buf: np.ndarray, spans: np.ndarray, col: int, *, null_if_empty: bool = True
          ) -> pa.Array:
    offsets, lengths = np.ascontiguousarray(spans[:, col:col + 2].T)  # one compiled layout
    return _strings(*w.gather(buf, offsets, lengths), lengths > 0 if null_if_empty else None)


def _buffers(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(data, offsets) of a string array without nulls, as the gathers take them."""
    _, offsets, data = strings.buffers()
    n = len(strings) + strings.offset
    offs = np.frombuffer(offsets, dtype=np.int32)[strings.offset:n + 1]
    return np.frombuffer(b"" if data is None else data, dtype=np.uint8), offs


def _hex(buf: np.ndarray, spans: np.ndarray, col: int) -> pa.Array:
    offsets, lengths = np.ascontiguousarray(spans[:, col:col + 2].T)
    return _strings(*w.gather_hex(buf, offsets, lengths), lengths > 0)


def _attributes(buf: np.ndarray, spans: np.ndarray, rows: np.ndarray, attrs: np.ndarray,
                scopes: list[ScopeSpans]) -> pa.Array:
    """The attribute map of each span at ``rows``."""
    kinds = attrs[:, w.A_KIND]  # a view: the marks below are for attribute_maps
    doubles = attrs[:, w.A_SCALAR].view(np.float64)
    kinds[(kinds == w.K_DOUBLE) & ~np.isfinite(doubles)] = w.K_TEXT  # NaN, ±Infinity
    double_text = doubles_text(pa.array(doubles[kinds == w.K_DOUBLE]))
    # Arrays, maps, bytes and non-finite doubles are rare: their text is made in Python.
    other = np.flatnonzero(kinds > w.K_DOUBLE)
    kinds[other] = w.K_TEXT
    texts = [to_text(_span_object(scopes, spans, row).attributes[i].value)
             for row, i in attrs[other][:, [w.A_SPAN, w.A_POS]].tolist()]
    (map_offsets, keys, key_offsets, values, value_offsets, valid) = w.attribute_maps(
        buf, spans, rows, attrs, *_buffers(double_text), *_buffers(pa.array(texts, pa.string())))
    return pa.MapArray.from_arrays(pa.array(map_offsets), _strings(keys, key_offsets),
                                   _strings(values, value_offsets, valid), type=ATTRS)


def warm_up() -> float:
    """Compile (or load from numba's cache) the walk before the first request needs it;
    return the seconds it took. A cold compile takes ≈ 10 s, a cached load well under 1."""
    started = time.perf_counter()
    req = ExportTraceServiceRequest()
    sp = req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="warm-up")
    sp.attributes.add(key="d").value.double_value = 0.5
    sp.attributes.add(key="b").value.bool_value = True
    sp.attributes.add(key="i").value.int_value = -1
    flatten_traces(req)
    return time.perf_counter() - started


def _span_object(scopes: list[ScopeSpans], spans: np.ndarray, row: int) -> Span:
    """Protobuf's object for a span-table row, for the rare parts read the slow way."""
    return scopes[spans[row, w.S_SCOPE]].spans[spans[row, w.S_INDEX]]


def _events_column(spans: np.ndarray, scopes: list[ScopeSpans]) -> pa.Array:
    with_events = np.flatnonzero(spans[:, w.S_N_EVENTS]).tolist()
    if not with_events:
        return pa.nulls(len(spans), pa.string())
    texts: list[str | None] = [None] * len(spans)
    for row in with_events:
        texts[row] = _events(_span_object(scopes, spans, row))
    return pa.array(texts, pa.string())


def flatten_traces_by_objects(req: ExportTraceServiceRequest) -> tuple[pa.Table, int, str]:
    """The same rows through protobuf's objects (slow; see the module docstring)."""
    rows = []  # (span, resource attributes, service, host, scope name)
    rejected = 0
    for rs in req.resource_spans:
        res = attr_map(rs.resource.attributes)
        service, host = res.get("service.name"), res.get("host.name")
        for ss in rs.scope_spans:
            scope = ss.scope.name or None
            for sp in ss.spans:
                if len(sp.trace_id) != 16 or len(sp.span_id) != 8 or not any(sp.trace_id):
                    rejected += 1
                else:
                    rows.append((sp, res, service, host, scope))
    spans = [r[0] for r in rows]
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
    return (pa.Table.from_pydict(cols, schema=SPANS), rejected,
            REJECTED.format(rejected) if rejected else "")


def _events(sp: Span) -> str:
    return json.dumps([{"name": e.name, "time_unix_nano": e.time_unix_nano,
                        "attributes": attr_map(e.attributes)} for e in sp.events])
