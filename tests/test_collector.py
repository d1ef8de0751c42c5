"""The collector with real OpenTelemetry SDK exporters on both transports, and bad input."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest
from google.rpc import status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from collector.batcher import DurableBatcher, Overloaded
from collector.ingestor import span_key_hashes
from collector.service import Collector
from collector.telemetry import RecentKeys
from collector.workers import SLOT_BYTES
from tests.builders import stored


def _emit(exporter, n: int = 3, name: str = "work") -> list[str]:
    provider = TracerProvider(resource=Resource.create({"service.name": "t", "host.name": "h"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    ids = []
    for i in range(n):
        with tracer.start_as_current_span(name, attributes={"i": i, "tags": ["a", "b"]}) as s:
            ids.append(format(s.get_span_context().span_id, "016x"))
    provider.shutdown()
    return ids


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_http_exporter_spans_arestored(collector, data, compression) -> None:
    exporter = HttpSpans(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/traces",
                         compression=compression)
    ids = _emit(exporter)
    got = stored(data, "SELECT span_id, attributes['i'], attributes['tags'], service_name "
                        "FROM raw_spans ORDER BY attributes['i']")
    assert [g[0] for g in got] == ids
    assert got[0][1:] == ("0", '["a","b"]', "t")


def test_grpc_exporter_and_a_vllm_shaped_span(collector, data) -> None:
    exporter = GrpcSpans(endpoint=f"127.0.0.1:{collector.grpc_port}", insecure=True)
    provider = TracerProvider(resource=Resource.create({"service.name": "vllm"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("vllm.llm_engine").start_span(
        "llm_request", kind=SpanKind.SERVER, start_time=1_800_000_000_000_000_000)
    span.set_attributes({"gen_ai.latency.time_in_queue": 0.01, "gen_ai.latency.e2e": 1.5,
                         "gen_ai.latency.time_to_first_token": 0.2,
                         "gen_ai.usage.prompt_tokens": 12, "gen_ai.usage.completion_tokens": 34,
                         "gen_ai.request.id": "chatcmpl-abc"})
    span.end(end_time=1_800_000_001_500_000_000)
    provider.shutdown()
    got = stored(data, "SELECT request_id, request_key, queue_s, e2e_s, prompt_tokens, "
                        "completion_tokens FROM stg_engine_spans")
    assert got == [("chatcmpl-abc", "abc", 0.01, 1.5, 12, 34)]


def test_otlp_json_with_hex_ids(collector, data) -> None:
    body = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "json-client"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
            "name": "j", "kind": 2, "startTimeUnixNano": "1800000000000000000",
            "endTimeUnixNano": "1800000001000000000", "someFutureField": 1,
            "attributes": [{"key": "n", "value": {"intValue": "7"}}]}]}]}]}
    r = httpx.post(f"http://127.0.0.1:{collector.http_port}/v1/traces", json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    got = stored(data, "SELECT trace_id, span_id, attributes['n'] FROM raw_spans")
    assert got == [("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "7")]


def _status(r: httpx.Response) -> status_pb2.Status:
    s = status_pb2.Status()
    s.ParseFromString(r.content)
    return s


def test_bad_input_gets_clear_errors(collector) -> None:
    url = f"http://127.0.0.1:{collector.http_port}"
    proto = {"content-type": "application/x-protobuf"}
    r = httpx.post(f"{url}/v1/traces", content=b"\xff\xff\xff", headers=proto)
    assert r.status_code == 400 and "cannot decode" in _status(r).message
    r = httpx.post(f"{url}/v1/traces", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = httpx.post(f"{url}/v1/logs", content=b"", headers=proto)
    assert r.status_code == 404 and "logs are not accepted" in _status(r).message
    bomb = gzip.compress(b"\0" * (21 * 1024 * 1024))
    r = httpx.post(f"{url}/v1/traces", content=bomb,
                   headers={**proto, "content-encoding": "gzip"})
    assert r.status_code == 413
    r = httpx.post(f"{url}/v1/traces", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["message"]
    r = httpx.post(f"{url}/v1/traces", content=iter([b"{}"]),  # chunked, no length
                   headers={"content-type": "application/json"})
    assert r.status_code == 411


def test_partial_success_rejects_only_invalid_spans(collector, data) -> None:
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    good = spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="good")
    bad = spans.add(trace_id=b"\x00" * 16, span_id=b"\x03" * 8, name="bad")
    assert good and bad
    r = httpx.post(f"http://127.0.0.1:{collector.http_port}/v1/traces",
                   content=req.SerializeToString(),
                   headers={"content-type": "application/x-protobuf"})
    resp = ExportTraceServiceResponse()
    resp.ParseFromString(r.content)
    assert r.status_code == 200 and resp.partial_success.rejected_spans == 1
    assert "trace_id" in resp.partial_success.error_message
    assert stored(data, "SELECT name FROM raw_spans") == [("good",)]


class _SlowSink:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.rows = 0

    def write(self, table_name: str, rows: pa.Table) -> None:
        self.release.wait(10)
        self.rows += rows.num_rows

    def close(self) -> None:
        pass


def test_overload_answers_with_back_pressure_and_keeps_what_it_accepted() -> None:
    sink = _SlowSink()
    b = DurableBatcher(sink, max_pending_rows=5, linger_s=0.0)
    t = pa.table({"x": list(range(3))})
    first = b.submit("spans", t)  # taken by the writer, which blocks in the sink
    time.sleep(0.2)
    second = b.submit("spans", t)  # pending: 3 rows
    with pytest.raises(Overloaded):
        b.submit("spans", t)  # 6 > 5 pending rows
    sink.release.set()
    assert first.result(5) == 3 and second.result(5) == 3
    b.close()
    assert sink.rows == 6


def test_http_overload_is_503_with_retry_after(collector) -> None:
    def refuse(*_a, **_k):
        raise Overloaded("busy")

    collector.ingest.ingestor.batcher.submit = refuse
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="x")
    r = httpx.post(f"http://127.0.0.1:{collector.http_port}/v1/traces",
                   content=req.SerializeToString(),
                   headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"


def test_requests_past_the_in_flight_bound_get_503_at_once() -> None:
    """Memory stays bounded however many clients connect: excess requests are refused."""
    from collector.receivers.otlp_http import OtlpHttpServer
    from collector.workers import InProcess

    sink = _SlowSink()
    ingest = InProcess(DurableBatcher(sink, linger_s=0.0))
    server = OtlpHttpServer(("127.0.0.1", 0), ingest, max_in_flight=1)
    server.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="x")
    body, proto = req.SerializeToString(), {"content-type": "application/x-protobuf"}
    try:
        held = threading.Thread(target=httpx.post, args=(url,),
                                kwargs={"content": body, "headers": proto, "timeout": 10})
        held.start()  # takes the only slot, then waits for the blocked sink
        time.sleep(0.3)
        with httpx.Client() as client:
            r = client.post(url, content=body, headers=proto)
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert "busy" in _status(r).message
            sink.release.set()
            held.join(5)
            # The same connection carries on once the collector has room again (the held
            # request's slot is freed just after its response went out).
            deadline = time.monotonic() + 5
            while (r := client.post(url, content=body, headers=proto)).status_code == 503:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert r.status_code == 200
        assert server.throttled >= 1 and sink.rows == 2
    finally:
        sink.release.set()
        server.shutdown()
        server.server_close()
        ingest.close()


def test_duplicates_from_retries_are_counted_once(collector, data) -> None:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="once")
    for _ in range(2):  # an exporter retry after a lost response
        httpx.post(f"http://127.0.0.1:{collector.http_port}/v1/traces",
                   content=req.SerializeToString(),
                   headers={"content-type": "application/x-protobuf"})
    assert stored(data, "SELECT count(*) FROM raw_spans") == [(2,)]
    assert stored(data, "SELECT count(*) FROM stg_spans") == [(1,)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(1, 2**64 - 1), max_size=40), max_size=20))
def test_recent_keys_count_every_repeat_while_no_slot_is_shared(requests) -> None:
    """The duplicate counter against an exact one, for keys that never share a slot; a key
    whose slot a later key took is forgotten (the documented price of a bounded table)."""
    bits = 8
    recent, seen, dups = RecentKeys(bits), set(), 0
    slot_of: dict[int, int] = {}
    for keys in requests:
        keys = [k for k in keys if slot_of.setdefault(k % 2**bits, k) == k]  # one key a slot
        for k in keys:
            dups += k in seen
            seen.add(k)
        assert recent.duplicates(np.array(keys, np.uint64)) == dups
        dups = 0
    taker = RecentKeys(bits)
    taker.duplicates(np.array([5], np.uint64))
    taker.duplicates(np.array([5 + 2**bits], np.uint64))  # the same slot
    assert taker.duplicates(np.array([5], np.uint64)) == 0


def test_span_keys_of_sequential_ids_spread_over_the_counters_slots() -> None:
    """Ids that differ in one character (counters, as many tracers make) must not share
    slots, or retries of them would go uncounted."""
    n = 2000
    rows = pa.table({"trace_id": [f"{i + 1:032x}" for i in range(n)],
                     "span_id": ["02" * 8] * n})
    slots = span_key_hashes(rows) & np.uint64(2**22 - 1)
    assert len(np.unique(slots)) >= n - 5  # ≈ 0.5 collisions expected at random


def test_store_is_readable_by_another_process_while_collector_runs(collector, data) -> None:
    import subprocess
    import sys

    _emit(HttpSpans(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/traces"))
    code = ("import duckdb,sys; con=duckdb.connect(sys.argv[1], read_only=True); "
            "print(con.execute('SELECT count(*) FROM raw_spans').fetchall()[0][0])")
    out = subprocess.run([sys.executable, "-c", code, str(data.catalog_db)],
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "3"
    # The DuckDB CLI from PyPI (1.5.x), both ways the docs give: the catalog file read-only,
    # and the views file from an in-memory session.
    cli = str(Path(sys.executable).parent / "duckdb")
    query = "SELECT count(*) FROM stg_spans"
    for args in ([cli, "-readonly", "-csv", "-noheader", str(data.catalog_db), "-c", query],
                 [cli, "-csv", "-noheader", "-c", f".read {data.views_sql}", "-c", query]):
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.strip() == "3", out.stderr


def test_the_collector_records_its_own_metrics_in_its_store(data) -> None:
    c = Collector(data, grpc_port=0, http_port=0, telemetry_interval_s=0.2).start()
    url = f"http://127.0.0.1:{c.http_port}/v1/traces"
    proto = {"content-type": "application/x-protobuf"}
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="good")
    spans.add(trace_id=b"\x00" * 16, span_id=b"\x03" * 8, name="bad")
    for _ in range(2):  # the second time, a retry: one duplicate span
        assert httpx.post(url, content=req.SerializeToString(), headers=proto).status_code == 200
    time.sleep(0.6)
    c.stop()

    def latest(name: str, where: str = "TRUE") -> tuple:
        return stored(data, f"SELECT value, count FROM stg_collector_metrics WHERE metric_name = "
                            f"'{name}' AND {where} ORDER BY ts_s DESC LIMIT 1")[0]

    assert latest("inferledger.collector.items",
                  "signal = 'traces' AND outcome = 'accepted'")[0] == 2
    assert latest("inferledger.collector.items",
                  "signal = 'traces' AND outcome = 'rejected'")[0] == 2
    assert latest("inferledger.collector.duplicate_spans")[0] == 1
    assert latest("inferledger.collector.throttled")[0] == 0
    assert latest("inferledger.collector.flush.duration")[1] >= 2  # flushes measured
    assert latest("inferledger.collector.store.size")[0] > 0
    assert latest("inferledger.collector.store.files")[0] >= 2
    assert latest("inferledger.collector.queue.rows")[0] >= 0


def test_worker_processes_share_the_load_and_a_dead_one_is_replaced(data) -> None:
    """With worker processes every acknowledged span is stored once a worker dies mid-run,
    retries are counted as duplicates whichever worker saw them, and the collector's own
    metrics add up across workers."""
    import os
    import signal

    c = Collector(data, grpc_port=0, http_port=0, workers=2, telemetry_interval_s=0.2).start()
    url, proto = f"http://127.0.0.1:{c.http_port}/v1/traces", {
        "content-type": "application/x-protobuf"}

    def send(i: int, padding: int = 0) -> int:
        req = ExportTraceServiceRequest()
        spans = req.resource_spans.add().scope_spans.add().spans
        span = spans.add(trace_id=(i + 1).to_bytes(16, "big"), span_id=b"\x02" * 8,
                         name=f"s{i}")
        if padding:
            span.attributes.add(key="padding").value.string_value = "x" * padding
        return httpx.post(url, content=req.SerializeToString(), headers=proto).status_code

    try:
        acked = [i for i in range(20) if send(i) == 200]
        assert len(acked) == 20
        assert send(99, padding=SLOT_BYTES) == 200  # too big for a slot: through the pipe
        acked.append(99)
        assert send(0) == 200  # a retry: counted as a duplicate, whichever worker has it
        first = c.ingest._procs[0]
        os.kill(first.pid, signal.SIGKILL)
        first.join(5)
        deadline = time.monotonic() + 60
        for i in range(20, 40):  # 503 (retry later) until the replacement is up, never lost
            while send(i) != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            acked.append(i)
        while c.ingest._procs[0] is first:  # replaced in the background
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for i in range(40, 60):  # both workers take jobs again
            assert send(i) == 200
            acked.append(i)
        time.sleep(0.6)
    finally:
        c.stop()
    names = stored(data, "SELECT name FROM stg_spans")
    assert sorted(n for (n,) in names) == sorted(f"s{i}" for i in acked)
    (dups,) = stored(data, "SELECT max(value) FROM stg_collector_metrics "
                           "WHERE metric_name = 'inferledger.collector.duplicate_spans'")[0]
    assert dups == 1


def test_a_body_over_the_limit_gets_its_413_even_from_urllib(collector) -> None:
    """urllib writes the whole body before it reads: the 413 must still reach it."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{collector.http_port}/v1/traces",
                                 data=b"\0" * (30 * 1024 * 1024), method="POST",
                                 headers={"Content-Type": "application/x-protobuf"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code == 413
    assert "exceeds" in status_pb2.Status.FromString(e.value.read()).message


def test_expect_100_continue_over_the_limit_is_answered_before_the_body(collector) -> None:
    with socket.create_connection(("127.0.0.1", collector.http_port), timeout=10) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf"
                  b"\r\nContent-Length: 999999999\r\nExpect: 100-continue\r\n\r\n")
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413") and b"100 Continue" not in head


def test_a_client_that_hangs_up_costs_one_log_line(collector, caplog) -> None:
    """Clients that give up before their reply (time-outs, resets) are normal: no traceback."""
    import logging
    import struct

    caplog.set_level(logging.INFO, logger="collector.receivers.otlp_http")
    for sent in (b"\x0a\x00", b"\0" * 4096):
        s = socket.create_connection(("127.0.0.1", collector.http_port), timeout=10)
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf"
                  b"\r\nContent-Length: 100000\r\n\r\n" + sent)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST: the collector's read or its reply fails
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
            "went away" in r.message or "ended" in r.message for r in caplog.records):
        time.sleep(0.05)
    ours = [r for r in caplog.records if r.name.startswith("collector")]
    assert ours and not any(r.exc_info for r in ours), [r.getMessage() for r in ours]
    r = httpx.post(f"http://127.0.0.1:{collector.http_port}/v1/traces", content=b"",
                   headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 200  # and it goes on serving


def test_store_size_metrics_skip_a_segment_compaction_just_deleted(data, monkeypatch) -> None:
    import inferledger.store.layout as layout
    from collector.telemetry import Telemetry

    part = data.raw_table("spans") / "day=2026-11-25"
    part.mkdir(parents=True)
    (part / "a.parquet").write_bytes(b"x" * 10)
    real = layout.glob.iglob
    # As if compaction deleted b.parquet between the listing and the stat.
    monkeypatch.setattr(layout.glob, "iglob",
                        lambda pattern, **kw: [*real(pattern, **kw), str(part / "b.parquet")])
    t = Telemetry(data, "h", interval_s=3600)
    try:
        assert [o.value for o in t._store_size(None)] == [10]
        assert [o.value for o in t._store_files(None)] == [1]
    finally:
        t.shutdown()
