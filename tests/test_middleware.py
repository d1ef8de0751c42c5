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


def test_answer_headers_become_attributes(traced) -> None:
    url, _, edge_spans, _ = traced
    _chat(url, stream=False, headers={
        "x-tenant": "acme", "idempotency-key": "order-77-summary", "x-stainless-retry-count": "1",
        "x-inferledger-answer-id": "ticket-9", "x-inferledger-context-tokens": "12",
        "x-inferledger-user-tokens": "not a number"})
    (edge,) = _spans(edge_spans)
    a = edge.attributes
    assert a["inferledger.answer_id"] == "ticket-9" and a["inferledger.retry_attempt"] == 1
    assert a["inferledger.usage.context_tokens"] == 12
    assert "inferledger.usage.user_tokens" not in a  # malformed: ignored, the request went on
    assert len(a["inferledger.retry_key"]) == 32  # a hash, not the caller's key
    assert not any("order-77" in str(v) for v in a.values())


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


def test_an_agent_client_traces_its_steps_and_says_the_users_tokens(traced) -> None:
    """The simulator's live agent app against a served engine: a root span per answer, tool
    calls between the steps, each step's request under the root with the user's tokens."""
    import asyncio

    from simulator.loadgen import LoadGenerator
    from simulator.scenario import App, Lengths

    url, _, edge_spans, _ = traced
    app_spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(app_spans))
    agent = App("acme", "ops-agent", "agent", MODEL, 60.0, Lengths(20, 0.1), Lengths(4, 0.1),
                steps=Lengths(3, 0.01), tool_ms=Lengths(20, 0.1), tool_tokens=Lengths(10, 0.1),
                retries=1, error_share=0.0)
    gen = LoadGenerator({MODEL: [url]}, (agent,), rate_per_s=4.0, seed=3, tracer_provider=tp)
    asyncio.run(gen.run(duration_s=1.5))
    spans = app_spans.get_finished_spans()
    roots = {s.context.span_id for s in spans if s.name == "invoke_agent ops-agent"}
    tools: dict[int, int] = {}
    for s in spans:
        if s.name == "execute_tool search" and s.parent.span_id in roots:
            tools[s.parent.span_id] = tools.get(s.parent.span_id, 0) + 1
    done = [r for r, n in tools.items() if n == 2]  # three steps, two tool calls between
    assert done, tools
    edges: dict[int, list] = {}
    for e in _spans(edge_spans, 3 * len(done)):
        if e.parent is not None and e.parent.span_id in done:
            edges.setdefault(e.parent.span_id, []).append(e)
    whole = [es for es in edges.values() if len(es) == 3]
    assert whole, {k: len(v) for k, v in edges.items()}
    for es in whole:  # every step says the same user prompt, with its own retry key
        assert len({e.attributes["inferledger.usage.user_tokens"] for e in es}) == 1
        assert len({e.attributes["inferledger.retry_key"] for e in es}) == 3
        assert all(e.attributes["inferledger.retry_attempt"] == 0 for e in es)


def test_inside_vllm_it_sends_where_vllm_sends_its_spans(node, collector, data, monkeypatch):
    """vLLM turns ``--otlp-traces-endpoint`` into OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (a gRPC
    address by vLLM's default): with nothing else set, the middleware's spans go there too,
    over gRPC (they were posted as HTTP to the gRPC port and lost)."""
    from analytics.pipeline import run

    monkeypatch.delenv("INFERLEDGER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                       f"http://127.0.0.1:{collector.grpc_port}")
    monkeypatch.setenv("INFERLEDGER_GPU_BACKEND", f"sim:{node}")
    assert MiddlewareConfig.from_env().protocol == "grpc"
    app = make_engine(node, [0], TracerProvider())
    app.add_middleware(InferLedgerMiddleware)
    with serving(app) as url:
        assert _chat(url, stream=False).status_code == 200
    mw = app.middleware_stack
    while not isinstance(mw, InferLedgerMiddleware):
        mw = mw.app
    mw.tracer_provider.shutdown()
    run(data)
    assert stored(data, "SELECT seen_by, outcome FROM requests") == [("edge_only", "ok")]


@pytest.mark.parametrize(("env", "protocol"), [
    ({}, "grpc"),  # vLLM's default for its endpoint
    ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "http/protobuf"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "http/protobuf"),
    ({"INFERLEDGER_OTLP_ENDPOINT": "http://c:4318"}, "http/protobuf"),
    ({"INFERLEDGER_OTLP_ENDPOINT": "c:4317", "INFERLEDGER_OTLP_PROTOCOL": "grpc"}, "grpc"),
])
def test_the_protocol_follows_the_endpoint_it_came_with(env, protocol) -> None:
    assert MiddlewareConfig.from_env({"INFERLEDGER_TENANT_HASH_KEY": "k", **env}
                                     ).protocol == protocol


def test_its_warnings_print_where_the_server_silenced_the_root_logger(capsys) -> None:
    """vLLM's API server sets the root logger to ERROR; a tenant key left at its default and
    a GPU placement that fell back must still reach the operator's console."""
    import logging

    import agents.tracing.middleware as middleware

    root, saved = logging.getLogger(), logging.getLogger().level
    mw_log = middleware.log
    state = (mw_log.level, mw_log.propagate, list(mw_log.handlers))
    root.setLevel(logging.ERROR)
    try:
        middleware.keep_warnings_visible()
        middleware.keep_warnings_visible()  # twice: still one handler
        MiddlewareConfig.from_env({"INFERLEDGER_GPU_BACKEND": "none"})
        middleware._gpu_uuids(MiddlewareConfig(gpu_backend="bogus"))
        err = capsys.readouterr().err
    finally:
        root.setLevel(saved)
        mw_log.setLevel(state[0])
        mw_log.propagate = state[1]
        mw_log.handlers[:] = state[2]
    assert err.count("INFERLEDGER_TENANT_HASH_KEY is not set") == 1
    assert "GPU placement unknown (unknown GPU backend 'bogus'" in err


def test_the_simulated_engines_span_has_real_vllms_attributes(traced) -> None:
    """Pinned to a real vLLM 0.32 llm_request span (tests/fixtures/vllm-0.32): the same
    attribute names, the same resource keys that analytics read."""
    from pathlib import Path

    url, engine_spans, _, _ = traced
    fixture = Path(__file__).parent / "fixtures" / "vllm-0.32" / "spans.jsonl"
    real = next(s for s in map(json.loads, fixture.read_text().splitlines())
                if s["name"] == "llm_request")
    assert _chat(url, stream=False, body={"temperature": 0.7, "top_p": 0.9, "n": 1}
                 ).status_code == 200
    for _ in range(200):
        if engine_spans.get_finished_spans():
            break
        time.sleep(0.02)
    (sim,) = engine_spans.get_finished_spans()
    assert set(sim.attributes) == set(real["attributes"])
    assert sim.kind.value == real["kind"] - 1  # OTLP numbers kinds from 1, the SDK from 0
