"""Fuzzing the OTLP/HTTP receiver: arbitrary bodies never crash it or earn a 5xx.

Random bytes, random JSON, broken gzip and random content types get the right 4xx with a
``google.rpc.Status`` message (or 200 when the bytes happen to be a valid request); valid
requests with arbitrary attribute values (unicode, NaN, huge integers, bytes, nested arrays
and maps) are stored whole and stay readable through the SQL views.
"""

from __future__ import annotations

import gzip
import http.client
import json

import pytest
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.service import Collector
from inferledger.store import DataDir
from tests.builders import stored_when

FUZZ = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = DataDir.at(tmp_path_factory.mktemp("fuzz") / "data")
    c = Collector(data, grpc_port=0, http_port=0).start()
    yield c, data
    c.stop()


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        conn.close()


def assert_clear_answer(status: int, body: bytes, headers: dict) -> None:
    """200, or a 4xx whose body is a google.rpc.Status with a message; never a 5xx."""
    assert status == 200 or 400 <= status < 500, status
    if status != 200:
        if headers.get("Content-Type") == "application/json":
            assert json.loads(body)["message"]
        else:
            s = status_pb2.Status()
            s.ParseFromString(body)
            assert s.message


@FUZZ
@given(body=st.binary(max_size=4096),
       ctype=st.sampled_from(["application/x-protobuf", "application/json"]),
       path=st.sampled_from(["/v1/traces", "/v1/metrics"]))
def test_random_bytes(server, body, ctype, path) -> None:
    assert_clear_answer(*post(server[0].http_port, path, body, {"Content-Type": ctype}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=30)
otlp_shaped = st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries({
    "scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(st.dictionaries(
        st.sampled_from(["traceId", "spanId", "name", "kind", "startTimeUnixNano",
                         "endTimeUnixNano", "attributes", "status", "parentSpanId"]),
        json_values), max_size=3)}), max_size=2)}), max_size=2)})


@FUZZ
@given(doc=json_values | otlp_shaped)
def test_random_json(server, doc) -> None:
    body = json.dumps(doc).encode()
    assert_clear_answer(*post(server[0].http_port, "/v1/traces", body,
                              {"Content-Type": "application/json"}))


@FUZZ
@given(payload=st.binary(max_size=2048), cut=st.integers(0, 64),
       encoding=st.sampled_from(["gzip", "deflate", "br", "GZIP", ""]))
def test_broken_or_unknown_compression(server, payload, cut, encoding) -> None:
    body = gzip.compress(payload)
    body = body[:-cut] if cut else body  # truncated streams included
    assert_clear_answer(*post(server[0].http_port, "/v1/traces", body, {
        "Content-Type": "application/x-protobuf", "Content-Encoding": encoding}))


@FUZZ
@given(ctype=st.text(max_size=40).filter(lambda t: "\n" not in t and "\r" not in t))
def test_any_content_type(server, ctype) -> None:
    try:
        ctype.encode("latin-1")
    except UnicodeEncodeError:
        return  # not sendable as an HTTP header
    status, body, headers = post(server[0].http_port, "/v1/traces", b"", {"Content-Type": ctype})
    assert_clear_answer(status, body, headers)


def _array(values: list[AnyValue]) -> AnyValue:
    v = AnyValue()
    v.array_value.values.extend(values)
    return v


def _kvlist(d: dict[str, AnyValue]) -> AnyValue:
    v = AnyValue()
    for k, x in d.items():
        v.kvlist_value.values.add(key=k).value.CopyFrom(x)
    return v


any_values = st.recursive(
    st.builds(lambda v: AnyValue(string_value=v), st.text())
    | st.builds(lambda v: AnyValue(int_value=v), st.integers(-2**63, 2**63 - 1))
    | st.builds(lambda v: AnyValue(double_value=v), st.floats())
    | st.builds(lambda v: AnyValue(bool_value=v), st.booleans())
    | st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=32)),
    lambda inner: st.lists(inner, max_size=3).map(_array) | st.dictionaries(
        st.text(max_size=8), inner, max_size=3).map(_kvlist),
    max_leaves=12)


@FUZZ
@given(attrs=st.dictionaries(st.text(min_size=1, max_size=16), any_values, max_size=6),
       name=st.text(max_size=64), n=st.integers(0, 2**64))
def test_any_attribute_values_are_stored_whole(server, attrs, name, n) -> None:
    collector, data = server
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=(n + 1).to_bytes(16, "big"), span_id=b"\7" * 8, name=name,
        start_time_unix_nano=1, end_time_unix_nano=2)
    for k, v in attrs.items():
        span.attributes.add(key=k).value.CopyFrom(v)
    status, body, _ = post(collector.http_port, "/v1/traces", req.SerializeToString(),
                           {"Content-Type": "application/x-protobuf"})
    assert status == 200, body
    got = stored_when(
        data, f"SELECT name, attributes FROM raw_spans WHERE trace_id = '{n + 1:032x}'",
        lambda got: any(row[0] == name and set(attrs) <= set(dict(row[1])) for row in got))
    assert any(row[0] == name and set(attrs) <= set(dict(row[1])) for row in got), \
        "acknowledged but not readable"
