"""The gateway in front of two simulated engines, driven by real clients (openai SDK, httpx)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agents.gateway import Pool, build_gateway
from agents.tracing import InferLedgerMiddleware
from agents.tracing.config import MiddlewareConfig
from inferledger.errors import UserError
from simulator.gpu_state import NodeGpus
from tests.engine_server import MODEL, make_engine, serving


@pytest.fixture
def node(tmp_path):
    path = tmp_path / "node.gpus"
    NodeGpus.create(path, "node-g", ["h100", "h100"]).close()
    return path


def _gateway(upstreams: list[str], spans: InMemorySpanExporter):
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    cfg = MiddlewareConfig(host="gw-host", hash_key=b"k")
    return InferLedgerMiddleware(build_gateway(Pool(upstreams, interval_s=0.3)), cfg,
                                 tracer_provider=tp, source="gateway")


@pytest.fixture
def fleet(node):
    """Two engines (GPU 0 and GPU 1) behind a gateway; spans of both layers in memory."""
    engine_spans, edge_spans = InMemorySpanExporter(), InMemorySpanExporter()
    ep = TracerProvider()
    ep.add_span_processor(SimpleSpanProcessor(engine_spans))
    engines = [make_engine(node, [i], ep) for i in (0, 1)]
    with serving(engines[0]) as u0, serving(engines[1]) as u1, \
            serving(_gateway([u0, u1], edge_spans)) as gw:
        yield gw, engines, (u0, u1), engine_spans, edge_spans


def _finished(exporter: InMemorySpanExporter, n: int) -> list:
    for _ in range(250):
        spans = exporter.get_finished_spans()
        if len(spans) >= n:
            return list(spans)
        time.sleep(0.02)
    return list(exporter.get_finished_spans())


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test-key", max_retries=0)


def test_openai_sdk_through_the_gateway(fleet) -> None:
    gw, _, upstreams, engine_spans, edge_spans = fleet
    client = _client(gw)
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi there"}], max_tokens=5)
    assert reply.choices[0].message.content and reply.usage.completion_tokens >= 1
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "stream please"}], max_tokens=6,
        stream=True))
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert not any(c.usage for c in chunks)  # usage was not asked for: none comes back
    assert [m.id for m in client.models.list()] == [MODEL]

    edges, engines = _finished(edge_spans, 2), _finished(engine_spans, 2)
    assert len(edges) == 2
    for edge in edges:
        a = edge.attributes
        assert a["inferledger.span.source"] == "gateway" and a["inferledger.outcome"] == "ok"
        assert a["inferledger.upstream"] in upstreams
        assert a["gen_ai.usage.output_tokens"] >= 1  # the stream's usage, asked and stripped
        assert a["inferledger.tenant"].startswith("key-") and "sk-test" not in str(a)
        assert "inferledger.host" not in a and "inferledger.gpu_uuids" not in a
    # vLLM's span is the gateway span's child: traceparent went upstream.
    parents = {e.context.span_id for e in edges}
    assert {s.parent.span_id for s in engines} == parents


def test_least_outstanding_spreads_concurrent_streams(fleet) -> None:
    gw, _, upstreams, _, edge_spans = fleet

    async def go() -> None:
        async with httpx.AsyncClient(timeout=30) as c:
            await asyncio.gather(*(c.post(f"{gw}/v1/chat/completions", json={
                "model": MODEL, "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 40, "stream": True}) for _ in range(8)))

    asyncio.run(go())
    used = [s.attributes["inferledger.upstream"] for s in _finished(edge_spans, 8)]
    assert sorted(set(used)) == sorted(upstreams) and min(used.count(u) for u in upstreams) >= 3


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_a_dead_upstream_is_skipped_and_none_left_is_a_clear_503(node) -> None:
    spans = InMemorySpanExporter()
    engine = make_engine(node, [0], None)
    with serving(engine) as live, serving(_gateway([_dead_url(), live], spans)) as gw:
        for _ in range(4):
            r = httpx.post(f"{gw}/v1/chat/completions", timeout=10, json={
                "model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 2})
            assert r.status_code == 200
        assert httpx.get(f"{gw}/health").json()["healthy_upstreams"] == [live]
    with serving(_gateway([_dead_url()], spans)) as gw:
        started = time.monotonic()
        r = httpx.post(f"{gw}/v1/chat/completions", timeout=10, json={
            "model": MODEL, "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 503 and "no upstream" in r.json()["error"]["message"]
        assert time.monotonic() - started < 5  # never a hang
    assert _finished(spans, 5)[-1].attributes["inferledger.outcome"] == "rejected"


@contextlib.contextmanager
def _garbage_upstream():
    """Answers /health and /v1/models like vLLM, and any POST with broken HTTP."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    models = b'{"object":"list","data":[{"id":"%s"}]}' % MODEL.encode()

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                req = conn.recv(65536)
                if req.startswith(b"GET /v1/models"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(models), models))
                elif req.startswith(b"GET"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                                 b"Content-Length: 2\r\n\r\n{}")
                else:
                    conn.sendall(b"\x00\x01 this is not HTTP at all\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.close()


def test_bad_input_and_a_garbage_upstream_get_clear_errors_and_spans(node) -> None:
    spans = InMemorySpanExporter()
    with _garbage_upstream() as bad, serving(_gateway([bad], spans)) as gw:
        url = f"{gw}/v1/chat/completions"
        r = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "not JSON" in r.json()["error"]["message"]
        r = httpx.post(url, json={"model": "no-such-model", "messages": []})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        r = httpx.post(url, content=b"x" * (9 * 1024 * 1024),
                       headers={"content-type": "application/json"})
        assert r.status_code == 413
        r = httpx.post(url, json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 502 and "failed" in r.json()["error"]["message"]
    outcomes = [s.attributes["inferledger.outcome"] for s in _finished(spans, 4)]
    assert outcomes == ["error"] * 4


def test_client_hang_up_mid_stream_aborts_the_engine_request(fleet) -> None:
    gw, engines, _, _, edge_spans = fleet
    with httpx.Client(timeout=30) as c, c.stream("POST", f"{gw}/v1/chat/completions", json={
            "model": MODEL, "messages": [{"role": "user", "content": "a long one"}],
            "max_tokens": 4000, "stream": True}) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")  # the stream has started, then we leave
    deadline = time.monotonic() + 10
    while any(e.state.core.running or e.state.core.waiting for e in engines):
        assert time.monotonic() < deadline, "the engine kept generating for a gone client"
        time.sleep(0.05)
    (span,) = _finished(edge_spans, 1)
    assert span.attributes["inferledger.outcome"] == "client_abort"


def test_spans_reach_a_real_collector_and_become_one_request(node, collector, data) -> None:
    """openai SDK → gateway → engine, both exporting OTLP to a collector, then analytics."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from analytics.pipeline import run
    from inferledger.otel import span_exporter
    from tests.builders import stored

    # The engine's resource, as vLLM's tracer sets it: its host and process.
    ep = TracerProvider(resource=Resource.create({"service.name": "vllm", "host.name": "node-g",
                                                  "vllm.process_id": os.getpid()}))
    gp = TracerProvider()
    ep.add_span_processor(BatchSpanProcessor(span_exporter(f"127.0.0.1:{collector.grpc_port}")))
    gp.add_span_processor(BatchSpanProcessor(span_exporter(
        f"http://127.0.0.1:{collector.http_port}", "http/protobuf")))
    with serving(make_engine(node, [0], ep)) as up:
        app = InferLedgerMiddleware(build_gateway(Pool([up], interval_s=0.3)),
                                    MiddlewareConfig(host="gw", hash_key=b"k"),
                                    tracer_provider=gp, source="gateway")
        with serving(app) as gw:
            client = _client(gw)
            one = client.chat.completions.create(
                model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "one"}])
            two = [c for c in client.chat.completions.create(
                model=MODEL, max_tokens=4, stream=True,
                messages=[{"role": "user", "content": "two"}]) if c.choices[0].delta.content]
    ep.shutdown()
    gp.shutdown()
    run(data)
    rows = stored(data, "SELECT seen_by, outcome, output_tokens, upstream, host_name "
                        "FROM requests ORDER BY started_s")
    # Gateway span and vLLM's span joined (traceparent), placed on the engine's host.
    assert rows == [("both", "ok", one.usage.completion_tokens, up, "node-g"),
                    ("both", "ok", len(two), up, "node-g")]


def test_route_by_queue_reads_the_engines_metrics(fleet) -> None:
    """With ``--route-by queue`` the engine already busy (by anyone) gets the next request."""
    from agents.gateway.upstreams import engine_load

    _, _, (u0, u1), _, _ = fleet
    pool = Pool([u0, u1], route_by="queue")
    with httpx.Client(timeout=30) as c, c.stream("POST", f"{u0}/v1/chat/completions", json={
            "model": MODEL, "messages": [{"role": "user", "content": "busy " * 200}],
            "max_tokens": 3000, "stream": True}) as r:  # straight to engine 0, not via us
        lines = r.iter_lines()  # held: a dropped iterator closes the stream
        next(line for line in lines if '"content"' in line)  # the engine is decoding
        waiting, kv = engine_load(httpx.get(f"{u0}/metrics").text)
        assert waiting == 0 and kv > 0  # vLLM's names, parsed from the real exposition
        asyncio.run(_check(pool))
        assert [u.url for u in pool.candidates(MODEL)] == [u1, u0]
    with pytest.raises(UserError, match="route by"):
        Pool([u0], route_by="random")


async def _check(pool: Pool) -> None:
    async with httpx.AsyncClient() as c:
        await pool.check(c)


def test_completions_and_embeddings_through_the_gateway(fleet) -> None:
    gw, _, _, _, edge_spans = fleet
    client = _client(gw)
    text = client.completions.create(model=MODEL, prompt="once upon a time", max_tokens=5)
    assert text.choices[0].text and text.usage.prompt_tokens == 5
    chunks = [c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="count to three", max_tokens=5, stream=True) if c.choices]
    assert chunks and all(isinstance(t, str) for t in chunks)
    emb = client.embeddings.create(model=MODEL, input=["a b c", "d e"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 256
    spans = {s.attributes["gen_ai.operation.name"]: s for s in _finished(edge_spans, 3)}
    assert set(spans) == {"text_completion", "embeddings"}
    assert spans["embeddings"].attributes["gen_ai.usage.input_tokens"] == emb.usage.prompt_tokens
    assert all(s.attributes["inferledger.outcome"] == "ok" for s in _finished(edge_spans, 3))


def test_a_clients_traceparent_is_honoured_and_no_text_is_recorded(fleet) -> None:
    gw, _, _, engine_spans, edge_spans = fleet
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    secret = "my confidential prompt words"
    r = httpx.post(f"{gw}/v1/chat/completions", timeout=30,
                   headers={"traceparent": f"00-{trace_id}-{parent}-01"},
                   json={"model": MODEL, "max_tokens": 3,
                         "messages": [{"role": "user", "content": secret}]})
    assert r.status_code == 200
    (edge,), (eng,) = _finished(edge_spans, 1), _finished(engine_spans, 1)
    assert f"{edge.context.trace_id:032x}" == trace_id == f"{eng.context.trace_id:032x}"
    assert f"{edge.parent.span_id:016x}" == parent and eng.parent.span_id == edge.context.span_id
    reply = r.json()["choices"][0]["message"]["content"]
    for span in (edge, eng):  # neither the prompt nor the completion is on any span
        assert secret not in str(span.attributes) and reply not in str(span.attributes)
