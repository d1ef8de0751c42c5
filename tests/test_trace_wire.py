"""The compiled walk over the OTLP wire format gives exactly the rows protobuf's objects give.

``flatten_traces`` (the hot path) is held to ``flatten_traces_by_objects`` (the reference)
on arbitrary requests, and on wire-level oddities the SDKs never send but the protocol
allows: unknown fields, a field repeated (the last wins), a field with an unexpected wire
type, groups.
"""

from __future__ import annotations

import math

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.processors.anyvalue import double_text
from collector.processors.traces import flatten_traces, flatten_traces_by_objects

TEXT = st.text(max_size=12)
KEYS = st.sampled_from(["a", "b", "gen_ai.usage.input_tokens", "ключ", ""])


def _scalar(draw: st.DrawFn, value: AnyValue, depth: int) -> None:
    kind = draw(st.sampled_from(["none", "string", "bool", "int", "double", "bytes"]
                                + (["array", "kvlist"] if depth < 2 else [])))
    if kind == "string":
        value.string_value = draw(TEXT)
    elif kind == "bool":
        value.bool_value = draw(st.booleans())
    elif kind == "int":
        value.int_value = draw(st.integers(-(2**63), 2**63 - 1))
    elif kind == "double":
        value.double_value = draw(st.floats(allow_nan=True, allow_infinity=True))
    elif kind == "bytes":
        value.bytes_value = draw(st.binary(max_size=6))
    elif kind == "array":
        for _ in range(draw(st.integers(0, 2))):
            _scalar(draw, value.array_value.values.add(), depth + 1)
    elif kind == "kvlist":
        for _ in range(draw(st.integers(0, 2))):
            kv = value.kvlist_value.values.add(key=draw(KEYS))
            _scalar(draw, kv.value, depth + 1)


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = req.resource_spans.add()
        for key in draw(st.lists(st.sampled_from(["service.name", "host.name", "x"]),
                                 max_size=3)):
            rs.resource.attributes.add(key=key).value.string_value = draw(TEXT)
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(TEXT)
            for _ in range(draw(st.integers(0, 4))):
                sp = ss.spans.add(
                    trace_id=draw(st.sampled_from([b"", b"\0" * 16, b"\1" * 8])
                                  | st.binary(min_size=16, max_size=16)),
                    span_id=draw(st.sampled_from([b"", b"\2" * 4])
                                 | st.binary(min_size=8, max_size=8)),
                    parent_span_id=draw(st.binary(max_size=8)),
                    name=draw(TEXT), kind=draw(st.integers(0, 5)),
                    start_time_unix_nano=draw(st.integers(0, 2**63 - 1)),
                    end_time_unix_nano=draw(st.integers(0, 2**63 - 1)))
                sp.status.code = draw(st.integers(0, 2))
                sp.status.message = draw(TEXT)
                for _ in range(draw(st.integers(0, 5))):  # keys repeat: the last one wins
                    _scalar(draw, sp.attributes.add(key=draw(KEYS)).value, 0)
                for _ in range(draw(st.integers(0, 2))):
                    ev = sp.events.add(name=draw(TEXT), time_unix_nano=draw(st.integers(0, 9)))
                    ev.attributes.add(key="k").value.int_value = draw(st.integers(-5, 5))
    return req


def _same_rows(req: ExportTraceServiceRequest, raw: bytes | None = None) -> pa.Table:
    fast, fast_rejected, fast_message = flatten_traces(req, raw)
    slow, slow_rejected, slow_message = flatten_traces_by_objects(req)
    received = "received_at_unix_nano"
    assert fast.drop_columns([received]).equals(slow.drop_columns([received])), (
        fast.to_pylist(), slow.to_pylist())
    assert (fast_rejected, fast_message) == (slow_rejected, slow_message)
    return fast


@settings(max_examples=300, deadline=None)
@given(requests())
def test_the_compiled_walk_gives_the_rows_protobuf_objects_give(req) -> None:
    _same_rows(req)


def _vllm_like() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "vllm"
    sp = rs.scope_spans.add().spans.add(trace_id=b"\x11" * 16, span_id=b"\x22" * 8,
                                        name="llm_request", kind=2)
    sp.attributes.add(key="gen_ai.usage.prompt_tokens").value.int_value = 812
    sp.attributes.add(key="gen_ai.latency.time_to_first_token").value.double_value = 0.0425
    sp.attributes.add(key="gen_ai.request.model").value.string_value = "llama"
    return req


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out) + bytes([n])


def _field(number: int, wire: int, payload: bytes) -> bytes:
    """One field on the wire (payload already encoded for its wire type)."""
    return _varint(number << 3 | wire) + payload


def _len(number: int, payload: bytes) -> bytes:
    return _field(number, 2, _varint(len(payload)) + payload)


def test_values_are_stored_as_text_sql_can_cast() -> None:
    rows = _same_rows(_vllm_like()).to_pylist()
    assert dict(rows[0]["attributes"]) == {
        "gen_ai.usage.prompt_tokens": "812", "gen_ai.latency.time_to_first_token": "0.0425",
        "gen_ai.request.model": "llama"}
    assert [double_text(x) for x in (1.0, 1e-7, -0.0, math.nan, -math.inf)] == [
        "1", "1e-7", "-0", "NaN", "-Infinity"]


def test_unknown_fields_are_skipped_and_the_last_of_a_repeated_field_wins() -> None:
    span = _vllm_like().resource_spans[0].scope_spans[0].spans[0].SerializeToString()
    span += _field(99, 0, b"\x05")  # unknown varint
    span += _len(5, b"renamed")  # name again: the last one wins
    span += _field(6, 2, b"\x00")  # kind with the wrong wire type: an unknown field
    span += _field(100, 5, b"\x01\x02\x03\x04") + _field(101, 1, b"\0" * 8)
    raw = _len(1, _len(2, _len(2, span))) + _field(98, 0, b"\x01")
    req = ExportTraceServiceRequest.FromString(raw)
    assert req.resource_spans[0].scope_spans[0].spans[0].name == "renamed"
    rows = _same_rows(req, raw).to_pylist()
    assert rows[0]["name"] == "renamed" and rows[0]["kind"] == 2


def test_a_request_with_groups_takes_the_object_path() -> None:
    span = Span(trace_id=b"\x11" * 16, span_id=b"\x22" * 8, name="grouped")
    body = span.SerializeToString() + _field(50, 3, b"") + _field(50, 4, b"")  # empty group
    raw = _len(1, _len(2, _len(2, body)))
    req = ExportTraceServiceRequest.FromString(raw)
    assert _same_rows(req, raw).column("name").to_pylist() == ["grouped"]


def test_a_repeated_key_keeps_its_first_place_and_its_last_value() -> None:
    req = _vllm_like()
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    sp.attributes.add(key="gen_ai.usage.prompt_tokens").value.string_value = "last"
    rows = _same_rows(req).to_pylist()
    assert rows[0]["attributes"][0] == ("gen_ai.usage.prompt_tokens", "last")
    assert len(rows[0]["attributes"]) == 3
