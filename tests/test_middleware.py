"""The tracing middleware inside a vLLM-shaped server (the simulated engine), end to end."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agents.tracing import InferLedgerMiddleware
from agents.tracing.config import MiddlewareConfig
from inferledger.otel import span_exporter
from simulator.gpu_state import NodeGpus
from tests.builders import stored
from tests.engine_server import MODEL, make_engine, serving

STARTUP = "inferledger.engine.startup"


@pytest.fixture
def node(tmp_path):
    path = tmp_path / "node.gpus"
    NodeGpus.create(path, "node-t", ["h100", "h100"]).close()
    return path


@pytest.fixture
def traced(node, monkeypatch):
    """Engine on GPU 1 with the middleware added the way vLLM adds a class."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    engine_spans, edge_spans = InMemorySpanExporter(), InMemorySpanExporter()
    ep, mp = TracerProvider(), TracerProvider()
    ep.add_span_processor(SimpleSpanProcessor(engine_spans))
    mp.add_span_processor(SimpleSpanProcessor(edge_spans))
    app = make_engine(node, [1], ep)
    cfg = MiddlewareConfig(host="node-t", gpu_backend=f"sim:{node}", hash_key=b"k")
    app.add_middleware(InferLedgerMiddleware, config=cfg, tracer_provider=mp)
    with serving(app) as url:
        yield url, engine_spans, edge_spans, NodeGpus(node).gpus[1].uuid


def _chat(url: str, stream: bool, **extra) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": 8, "stream": stream, **extra.pop("body", {})}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30,
                      headers=extra.pop("headers", {"x-tenant": "acme", "x-route": "chat"}))


def _spans(exporter: InMemorySpanExporter, n: int = 1) -> list:
    """The finished request spans once ``n`` are there (a span ends after the last byte)."""
    for _ in range(200):
        spans = [s for s in exporter.get_finished_spans() if s.name != STARTUP]
        if len(spans) >= n:
            break
        time.sleep(0.02)
    return spans


def _events(r: httpx.Response) -> list[dict]:
    return [json.loads(line[6:]) for line in r.text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


def test_one_span_per_request_parent_of_vllms_span(traced) -> None:
    url, engine_spans, edge_spans, gpu1 = traced
    r = _chat(url, stream=False)
    assert r.status_code == 200
    (edge,), (eng,) = _spans(edge_spans), _spans(engine_spans)
    assert eng.name == "llm_request" and eng.parent.span_id == edge.context.span_id
    assert eng.context.trace_id == edge.context.trace_id
    a = edge.attributes
    usage = r.json()["usage"]
    assert a["inferledger.tenant"] == "acme" and a["inferledger.route"] == "chat"
    assert a["gen_ai.request.model"] == MODEL and a["inferledger.outcome"] == "ok"
    assert a["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert a["http.response.status_code"] == 200
    assert tuple(a["inferledger.gpu_uuids"]) == (gpu1,)  # CUDA_VISIBLE_DEVICES=1 via NVML
    assert a["inferledger.host"] == "node-t"
    assert eng.attributes["gen_ai.request.id"] == f"chatcmpl-{a['inferledger.request_id']}"


def test_stream_usage_is_requested_then_hidden_from_the_client(traced) -> None:
    url, engine_spans, edge_spans, _ = traced
    r = _chat(url, stream=True)
    events = _events(r)
    assert events and all(e["choices"] for e in events)  # no usage-only chunk reached us
    assert all("usage" not in e for e in events)
    (edge,), (eng,) = _spans(edge_spans), _spans(engine_spans)
    assert edge.attributes["gen_ai.usage.output_tokens"] == \
        eng.attributes["gen_ai.usage.completion_tokens"] == len(events)
    assert edge.attributes["inferledger.ttft_s"] > 0
    assert "inferledger.usage.estimated" not in edge.attributes


def test_client_that_asked_for_usage_still_gets_it(traced) -> None:
    url, *_ = traced
    events = _events(_chat(url, stream=True, body={"stream_options": {"include_usage": True}}))
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0


def test_api_key_becomes_a_hashed_tenant_and_is_never_recorded(traced) -> None:
    url, _, edge_spans, _ = traced
    _chat(url, stream=False, headers={"authorization": "Bearer sk-very-secret"})
    (edge,) = _spans(edge_spans)
    assert edge.attributes["inferledger.tenant"].startswith("key-")
    assert not any("sk-very-secret" in str(v) for v in edge.attributes.values())


def test_errors_are_recorded_with_their_status(traced) -> None:
    url, engine_spans, edge_spans, _ = traced
    r = _chat(url, stream=False, body={"model": "no-such-model"})
    assert r.status_code == 404
    (edge,) = _spans(edge_spans)
    assert edge.attributes["inferledger.outcome"] == "error"
    assert edge.attributes["http.response.status_code"] == 404
    assert engine_spans.get_finished_spans() == ()


def test_client_abort_mid_stream(traced) -> None:
    url, engine_spans, edge_spans, _ = traced
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 1000,
            "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i >= 6:
                break
    (edge,) = _spans(edge_spans)
    assert edge.attributes["inferledger.outcome"] == "client_abort"
    assert edge.attributes["inferledger.usage.estimated"] is True
    assert engine_spans.get_finished_spans() == ()  # vLLM traces no aborted request


def test_loaded_by_import_path_exports_to_the_collector(node, collector, data, monkeypatch):
    """vLLM's way: ``--middleware agents.tracing.InferLedgerMiddleware``, env config only."""
    from analytics.pipeline import run
    from analytics.summary import summary

    monkeypatch.setenv("INFERLEDGER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.http_port}")
    monkeypatch.setenv("INFERLEDGER_GPU_BACKEND", f"sim:{node}")
    monkeypatch.setenv("INFERLEDGER_HOST", "node-t")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    ep = TracerProvider()
    ep.add_span_processor(BatchSpanProcessor(span_exporter(f"127.0.0.1:{collector.grpc_port}")))
    app = make_engine(node, [0], ep, middleware=["agents.tracing.InferLedgerMiddleware"])
    with serving(app) as url:
        assert _chat(url, stream=True).status_code == 200
        # A real third-party client too: the openai SDK, streaming and not.
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-abc", max_retries=0)
        reply = client.chat.completions.create(
            model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "hello"}])
        streamed = [c for c in client.chat.completions.create(
            model=MODEL, max_tokens=4, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "hello again"}])]
        assert streamed[-1].usage is not None  # asked for by the client: still there
    # The server has stopped, so every span has ended: export them all now.
    mw = app.middleware_stack
    while not isinstance(mw, InferLedgerMiddleware):
        mw = mw.app
    mw.tracer_provider.shutdown()
    ep.shutdown()
    run(data)
    s = summary(data)
    assert s["requests"] == 3 and s["placed_fraction"] == 1.0
    tokens = stored(data, "SELECT output_tokens, seen_by, outcome FROM requests "
                          "ORDER BY started_s")
    assert tokens[1] == (reply.usage.completion_tokens, "both", "ok")
    assert tokens[2] == (streamed[-1].usage.completion_tokens, "both", "ok")


def test_start_up_is_recorded_once_the_server_is_ready(traced) -> None:
    """vLLM loads the model before it serves: process start → ready is the loading window."""
    from agents.tracing.middleware import process_started_at

    _, _, edge_spans, gpu = traced
    (span,) = [s for s in edge_spans.get_finished_spans() if s.name == STARTUP]
    assert span.attributes["inferledger.gpu_uuids"] == (gpu,)
    assert span.attributes["inferledger.host"] == "node-t"
    assert span.start_time == int(process_started_at() * 1e9) < span.end_time <= time.time_ns()
