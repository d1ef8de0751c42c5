"""The reference stack against the real engine: vLLM 0.32 (its CPU build) serving a tiny
random-weight Llama, with InferLedger's middleware loaded by vLLM itself.

One stack for the module: a real collector; vLLM started as a user starts it
(``--middleware agents.tracing.InferLedgerMiddleware --otlp-traces-endpoint …``, the
middleware configured by nothing but what vLLM sets and the docs tell users to set); the node
agent scraping vLLM's ``/metrics`` and sampling a simulated GPU that vLLM's worker process is
shown to hold (this machine has no GPU: NVML is the one boundary faked); the ``openai`` SDK
sending chat and text completions, streamed and not, with and without ``stream_options``,
n = 2, tenant headers, a client ``traceparent``, a hang-up mid-stream and bad requests; then
analytics. Assertions are on structure — parentage, one row per response, tokens and phases
equal to vLLM's own span, outcomes, placement, model loading, conservation — never on
latency. vLLM is installed by ``scripts/install.sh --test`` (``scripts/install_vllm.sh``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import psutil
import pytest

from collector.service import Collector
from inferledger.store import DataDir
from simulator.gpu_state import NodeGpus
from tests.builders import stored
from tests.ports import free_block

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
VLLM_PYTHON = ROOT / ".vllm-venv" / "bin" / "python"
MODEL = "tiny-llama"
HOST = "node-v"
START_S = 420  # vLLM's start-up took 37–101 s on two cores; leave room for a busy machine


@dataclass
class Sent:
    """What the workload sent and got, to hold the stored rows against."""

    chat: str  # the ids the requests were sent with (x-request-id)
    chat_stream_no_options: str
    chat_stream_with_options: str
    completion: str
    completion_stream: str
    n2: str
    aborted_trace: str
    client_trace: str
    client_span: str
    streamed_usage_seen: bool  # a stream without stream_options: did usage reach the client?
    streamed_usage_asked: int  # a stream with stream_options: the usage the client got
    unknown_model: int  # HTTP status
    bad_request: int


def _worker_of(api_pid: int) -> int | None:
    """The process holding the model: vLLM V1's ``VLLM::Worker`` (API server → EngineCore →
    Worker), once it exists."""
    try:
        family = psutil.Process(api_pid).children(recursive=True)
        return next((p.pid for p in family
                     if "Worker" in " ".join(p.cmdline() or [p.name()])), None)
    except psutil.Error:
        return None


def _start_serving(url: str, proc: subprocess.Popen, gpus: NodeGpus, log: Path) -> int:
    """Wait for vLLM to serve; as soon as its worker exists (while the model loads), show it
    holding the simulated GPU, as NVML would. Returns the worker's PID."""
    deadline, worker = time.monotonic() + START_S, None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vLLM exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        if worker is None and (worker := _worker_of(proc.pid)) is not None:
            gpus.update(0, power_w=300.0, busy=True, mem_used_bytes=2 << 30, pid=worker)
        try:
            if worker is not None and httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return worker
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"vLLM not serving with a worker in {START_S} s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _workload(url: str) -> Sent:
    """Each request names itself with ``x-request-id`` (as a gateway may), which the
    middleware keeps as the request's id and vLLM wraps in its own."""
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-real-vllm", max_retries=0)
    msgs = [{"role": "user", "content": "what does one response cost?"}]
    no_eos = {"ignore_eos": True}  # random weights: replies of exactly max_tokens
    ids: dict[str, str] = {}

    def named(key: str, **more: str) -> dict[str, str]:
        ids[key] = secrets.token_hex(16)
        return {"x-request-id": ids[key], **more}

    client.chat.completions.create(
        model=MODEL, messages=msgs, max_tokens=8, extra_body=no_eos,
        extra_headers=named("chat", **{"x-tenant": "acme", "x-route": "chat-app"}))
    plain_chunks = list(client.chat.completions.create(
        model=MODEL, messages=msgs, max_tokens=6, stream=True, extra_body=no_eos,
        extra_headers=named("plain")))
    asked_chunks = list(client.chat.completions.create(
        model=MODEL, messages=msgs, max_tokens=5, stream=True, extra_body=no_eos,
        stream_options={"include_usage": True}, extra_headers=named("asked")))
    client.completions.create(model=MODEL, prompt="the quick brown fox", max_tokens=7,
                              extra_body=no_eos, extra_headers=named("completion"))
    list(client.completions.create(model=MODEL, prompt="summarise the incident", max_tokens=4,
                                   stream=True, extra_body=no_eos,
                                   extra_headers=named("completion_stream")))
    client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=6, n=2,
                                   extra_body=no_eos, extra_headers=named("n2"))
    # A client that traces: its span is the middleware span's parent.
    client_trace, client_span = secrets.token_hex(16), secrets.token_hex(8)
    client.chat.completions.create(
        model=MODEL, messages=msgs, max_tokens=3, extra_body=no_eos,
        extra_headers={"traceparent": f"00-{client_trace}-{client_span}-01"})
    # A hang-up mid-stream: a long reply, dropped after its first chunks.
    aborted_trace = secrets.token_hex(16)
    with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=60, json={
            "model": MODEL, "messages": msgs, "max_tokens": 400, "stream": True,
            "ignore_eos": True}, headers={
            "traceparent": f"00-{aborted_trace}-{secrets.token_hex(8)}-01"}) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i >= 3:
                break
    unknown = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
        "model": "no-such-model", "messages": msgs, "max_tokens": 3})
    bad = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
        "model": MODEL, "messages": msgs, "max_tokens": -1})
    return Sent(
        chat=ids["chat"], chat_stream_no_options=ids["plain"],
        chat_stream_with_options=ids["asked"], completion=ids["completion"],
        completion_stream=ids["completion_stream"], n2=ids["n2"],
        aborted_trace=aborted_trace, client_trace=client_trace, client_span=client_span,
        streamed_usage_seen=any(c.usage is not None for c in plain_chunks),
        streamed_usage_asked=asked_chunks[-1].usage.completion_tokens
        if asked_chunks[-1].usage else -1,
        unknown_model=unknown.status_code, bad_request=bad.status_code)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[DataDir, Sent, dict]]:
    if not VLLM_PYTHON.exists():
        pytest.fail("real vLLM is not installed: run scripts/install.sh --test "
                    "(it runs scripts/install_vllm.sh)")
    from analytics.pipeline import run

    tmp = tmp_path_factory.mktemp("real-vllm")
    model_dir = tmp / "model"
    subprocess.run([str(VLLM_PYTHON), str(ROOT / "scripts" / "tiny_model.py"), str(model_dir)],
                   check=True, timeout=300)
    data = DataDir.at(tmp / "data")
    collector = Collector(data, grpc_port=0, http_port=0).start()
    state = tmp / "node.gpus"
    NodeGpus.create(state, HOST, ["h100"]).close()
    port = free_block(1)
    url = f"http://127.0.0.1:{port}"
    log = tmp / "vllm.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "VLLM_CPU_KVCACHE_SPACE": "1",
           # what docs/CONTRACT.md tells a user to set: vLLM's span names no service or host
           "OTEL_SERVICE_NAME": "vllm-tiny", "OTEL_RESOURCE_ATTRIBUTES": f"host.name={HOST}",
           "INFERLEDGER_HOST": HOST, "INFERLEDGER_GPU_BACKEND": "none"}
    for var in ("INFERLEDGER_OTLP_ENDPOINT", "INFERLEDGER_OTLP_PROTOCOL",
                "INFERLEDGER_TENANT_HASH_KEY",  # left unset: its warning must be seen
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(var, None)
    # The agent first: its samples cover the model loading too.
    agent = subprocess.Popen([
        sys.executable, "-m", "commands", "agent", "--gpu-backend", f"sim:{state}",
        "--host", HOST, "--interval", "0.5", "--vllm", url, "--vllm-interval", "1",
        "--otlp-endpoint", f"http://127.0.0.1:{collector.http_port}"],
        stderr=subprocess.DEVNULL)
    gpus = NodeGpus(state)
    with log.open("w") as out:
        vllm = subprocess.Popen([
            str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model_dir), "--served-model-name", MODEL, "--host", "127.0.0.1",
            "--port", str(port), "--enforce-eager", "--dtype", "bfloat16",
            "--max-model-len", "512", "--max-num-seqs", "8",
            "--otlp-traces-endpoint", f"http://127.0.0.1:{collector.grpc_port}",
            "--middleware", "agents.tracing.InferLedgerMiddleware"],
            cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        worker = _start_serving(url, vllm, gpus, log)
        time.sleep(2)  # the engine's first scrapes, before the first request
        sent = _workload(url)
        time.sleep(3)  # samples past the last request
        _stop(vllm)  # its exporters flush on the way out
        _stop(agent)
        facts = {"api_pid": vllm.pid, "worker_pid": worker, "log": log.read_text()}
    finally:
        _stop(vllm)
        _stop(agent)
        gpus.close()
        collector.stop()
    run(data)
    yield data, sent, facts


def _rows(data: DataDir, sql: str) -> list[dict]:
    from inferledger.store import connect_readonly

    con = connect_readonly(data)
    try:
        cur = con.execute(sql)
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def _requests(data: DataDir) -> dict[str, dict]:
    """The stored requests by the id each was sent with (its edge span's request id)."""
    return {r["sent_id"]: r for r in _rows(
        data, "SELECT r.*, e.request_key AS sent_id FROM requests r "
              "JOIN stg_edge_spans e ON e.span_key = r.request_uid")}


def _engine_spans(data: DataDir) -> list[dict]:
    return _rows(data, "SELECT * FROM stg_engine_spans")


def test_vllms_span_is_the_middlewares_child_and_the_client_trace_goes_through(stack) -> None:
    data, sent, _ = stack
    edges = {r["span_id"]: r for r in _rows(data, "SELECT * FROM stg_edge_spans")}
    engine = _engine_spans(data)
    assert engine, "vLLM exported no llm_request span"
    for span in engine:
        assert span["parent_span_id"] in edges, span  # trace context reached vLLM
    (mine,) = [e for e in edges.values() if e["trace_id"] == sent.client_trace]
    assert mine["parent_span_id"] == sent.client_span
    resource = _rows(data, "SELECT DISTINCT service_name, host_name FROM stg_spans "
                           "WHERE name = 'llm_request'")
    assert resource == [{"service_name": "vllm-tiny", "host_name": HOST}]


def test_one_row_per_response_with_vllms_tokens_and_phases(stack) -> None:
    data, sent, _ = stack
    reqs = _requests(data)
    engine = {}
    for span in _engine_spans(data):
        engine.setdefault(span["request_key"], []).append(span)
    for rid, max_tokens, choices in ((sent.chat, 8, 1), (sent.chat_stream_no_options, 6, 1),
                                     (sent.chat_stream_with_options, 5, 1),
                                     (sent.completion, 7, 1), (sent.completion_stream, 4, 1),
                                     (sent.n2, 6, 2)):
        r, spans = reqs[rid], engine[rid]
        assert (r["seen_by"], r["outcome"], r["choices"]) == ("both", "ok", choices), r
        assert len(spans) == choices  # vLLM: one llm_request span per choice
        assert r["input_tokens"] == spans[0]["prompt_tokens"] > 0
        assert r["output_tokens"] == sum(s["completion_tokens"] for s in spans) \
            == max_tokens * choices
        if choices == 1:
            (s,) = spans
            assert r["queue_s"] == pytest.approx(s["queue_s"], abs=1e-6)
            assert r["prefill_s"] == pytest.approx(s["prefill_s"], abs=1e-6)
            assert r["decode_s"] == pytest.approx(s["decode_s"], abs=1e-6)
            assert r["inference_s"] == pytest.approx(s["inference_s"], abs=1e-6)
    # The middleware asked vLLM for a stream's usage and kept it from the client that did
    # not ask; the client that asked got it.
    assert not sent.streamed_usage_seen
    assert sent.streamed_usage_asked == 5
    assert reqs[sent.chat]["tenant"] == "acme" and reqs[sent.chat]["route"] == "chat-app"
    assert reqs[sent.completion]["tenant"].startswith("key-")  # hashed API key, never the key
    stored_text = json.dumps(_rows(data, "SELECT attributes FROM stg_spans"), default=str)
    assert "sk-real-vllm" not in stored_text


def test_outcomes_of_a_hang_up_and_bad_requests(stack) -> None:
    data, sent, _ = stack
    rows = _rows(data, "SELECT trace_id, outcome, http_status, model, seen_by "
                       "FROM requests ORDER BY started_s")
    (aborted,) = [r for r in rows if r["trace_id"] == sent.aborted_trace]
    assert aborted["outcome"] == "client_abort"
    assert (sent.unknown_model, sent.bad_request) == (404, 400)
    failed = sorted((r["http_status"], r["model"], r["outcome"]) for r in rows
                    if r["http_status"] in (400, 404))
    # The unknown name is no model of its own; the bad request names the served model.
    assert failed == [(400, MODEL, "error"), (404, None, "error")]


def test_requests_are_placed_through_vllms_worker_process(stack) -> None:
    """The spans name the API server's PID; the GPU is held by its grandchild, the worker
    (what NVML reports): placement goes through the worker's ancestors."""
    data, _, facts = stack
    assert facts["worker_pid"] != facts["api_pid"]
    assert facts["api_pid"] in _reported_owners(data, facts["worker_pid"])
    placed = {r["placement_source"]: r["n"] for r in _rows(
        data, "SELECT placement_source, count(*) AS n FROM request_costs GROUP BY 1")}
    counts = _rows(data, "SELECT count(*) FILTER (WHERE reached_engine) AS served, "
                         "count(*) FILTER (WHERE NOT reached_engine) AS turned_away "
                         "FROM requests")[0]
    # every request an engine worked on is on the GPU; the 404 and the 400 on none
    assert placed == {"process_match": counts["served"], "not_served": counts["turned_away"]}
    assert counts == {"served": 8, "turned_away": 2}


def _reported_owners(data: DataDir, worker: int) -> set[int]:
    """The worker and its ancestors as the agent reported them (the stored process samples;
    after vLLM stopped, the simulated GPU still names the gone worker, with no ancestors)."""
    rows = _rows(data, f"SELECT DISTINCT owner_pids FROM stg_gpu_processes WHERE pid = {worker}")
    return {pid for r in rows for pid in r["owner_pids"]}


def test_model_loading_is_vllms_own_loading_window(stack) -> None:
    data, _, facts = stack
    (startup,) = _rows(data, "SELECT * FROM stg_engine_startups")
    assert startup["start_source"] == "vllm" and startup["pid"] == facts["api_pid"]
    loading = _rows(data, "SELECT sum(model_loading_s) AS s FROM gpu_time")[0]["s"]
    assert loading > 0, "the start-up's GPU time was not booked as model loading"
    assert loading <= startup["end_s"] - startup["start_s"] + 1


def test_the_middlewares_warnings_reach_vllms_console_and_conservation_holds(stack) -> None:
    data, _, facts = stack
    # vLLM's API server sets the root logger to ERROR; the middleware still speaks.
    assert "inferledger.middleware: INFERLEDGER_TENANT_HASH_KEY is not set" in facts["log"]
    from analytics.summary import summary

    s = summary(data)
    assert s["conservation_max_rel_error"] < 1e-9
    assert stored(data, "SELECT count(*) FROM raw_metric_points "
                        "WHERE metric_name = 'vllm:prompt_tokens_total'")[0][0] > 0
