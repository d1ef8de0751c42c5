"""Answers: requests grouped into the answer they served, retries booked once to the answer
that completed, context expansion and KV memory — on hand-checked data."""

from __future__ import annotations

import secrets

import pytest

from analytics.attribution import attribute
from analytics.settings import Settings, SettingsError, load_settings
from tests.builders import Fleet, rows

T0 = 1_800_000_000.0
G = "GPU-eeeeeeee-0000-0000-0000-000000000001"
MODEL = "llama-3.1-8b-instruct"
KV_BYTES = 2 * 32 * 8 * 128 * 2  # Llama 3.1 8B, BF16: bytes of KV cache per token


def sampled(f: Fleet, seconds: int = 60) -> Fleet:
    for t in range(seconds + 1):
        f.sample(G, T0 + t, energy_j=300.0 * t, utilization=0.5)
    return f


def req(f: Fleet, t: float, dur: float = 1.0, **kw) -> str:
    kw.setdefault("input_tokens", 400)
    kw.setdefault("output_tokens", 50)
    kw.setdefault("model", MODEL)
    return f.request(scheduled=t, first_token=t + 0.2, finished=t + dur, gpus=[G], **kw)


def answers(f: Fleet, settings: Settings | None = None) -> tuple[dict, dict, dict]:
    con = f.con(settings)
    by_answer = {r["answer_id"]: r for r in rows(con, "SELECT * FROM mart_answer_costs")}
    members = {r["request_uid"]: r for r in rows(con, "SELECT * FROM int_answers")}
    costs = {r["request_uid"]: r for r in rows(con, "SELECT * FROM mart_request_costs")}
    return by_answer, members, costs


def test_an_agent_run_is_one_answer_with_its_tool_time_and_context() -> None:
    f = Fleet()
    trace = secrets.token_hex(16)
    root = f.span(trace, "agent run", T0 + 0.5, T0 + 9.0)
    s1 = req(f, T0 + 1, parent=root, trace=trace, input_tokens=200)
    f.span(trace, "tool: search", T0 + 2.1, T0 + 3.0, parent=root,
           attrs={"inferledger.context_tokens": 300})
    s2 = req(f, T0 + 3.1, parent=root, trace=trace, input_tokens=500, output_tokens=40)
    s3 = req(f, T0 + 5, dur=3.0, parent=root, trace=trace, input_tokens=600)
    alone = req(f, T0 + 20)
    by_answer, members, costs = answers(sampled(f))
    assert len(by_answer) == 2
    a = by_answer[f"trace:{trace}"]
    assert a["answer_key"] == "trace" and a["requests"] == 3 and a["outcome"] == "completed"
    assert a["retries"] == 0 and a["retry_cost_usd"] == 0
    assert a["cost_usd"] == pytest.approx(sum(costs[r]["cost_usd"] for r in (s1, s2, s3)))
    # the timeline: the agent's own span from start to end, the tool's 0.9 s beside the LLM
    assert a["e2e_s"] == pytest.approx(8.5)
    assert a["other_spans_s"] == pytest.approx(0.9)
    assert a["ttft_s"] == pytest.approx((T0 + 5.2) - (T0 + 0.5))  # the last step's first token
    # the tool's output is step 2's context, and only step 2's
    assert {r: members[r]["context_tokens"] for r in (s1, s2, s3)} == {s1: None, s2: 300,
                                                                         s3: None}
    c2 = costs[s2]
    assert 0.6 * c2["prompt_cost_usd"] <= c2["context_cost_usd"] <= c2["cost_usd"]
    assert a["context_cost_usd"] == pytest.approx(c2["context_cost_usd"])
    # a request with nothing around it is an answer of one
    assert by_answer[members[alone]["answer_id"]]["requests"] == 1


def test_an_embedding_before_the_generation_joins_its_answer() -> None:
    f = Fleet()
    trace = secrets.token_hex(16)
    root = f.span(trace, "rag answer", T0 + 0.9, T0 + 6)
    embed = f.request(scheduled=T0 + 1, first_token=T0 + 1.05, finished=T0 + 1.05, gpus=[G],
                      input_tokens=30, output_tokens=0, model=MODEL, trace=trace, parent=root,
                      attrs={"gen_ai.operation.name": "embeddings"})
    f.span(trace, "retrieval", T0 + 1.1, T0 + 1.4, parent=root)
    gen = req(f, T0 + 1.5, dur=4.0, parent=root, trace=trace,
              attrs={"gen_ai.operation.name": "chat"})
    by_answer, _, costs = answers(sampled(f))
    (a,) = by_answer.values()
    assert (a["requests"], a["embedding_requests"], a["retries"]) == (2, 1, 0)
    assert a["cost_usd"] == pytest.approx(costs[embed]["cost_usd"] + costs[gen]["cost_usd"])
    assert costs[embed]["cost_usd"] > 0
    # the user waited for the generation's first token, not the embedding's
    assert a["ttft_s"] == pytest.approx((T0 + 1.7) - (T0 + 0.9))
    assert a["other_spans_s"] == pytest.approx(0.3)


def test_a_retry_with_an_idempotency_key_is_booked_once_to_the_answer_that_completed() -> None:
    f = Fleet()
    first = req(f, T0 + 1, dur=5.0, outcome="timeout", attrs={"inferledger.retry_key": "k1"})
    again = req(f, T0 + 8, attrs={"inferledger.retry_key": "k1", "inferledger.retry_attempt": 1})
    by_answer, members, costs = answers(sampled(f))
    assert len(by_answer) == 1  # two traces, one answer: the retry's
    (a,) = by_answer.values()
    assert members[first]["answer_id"] == members[again]["answer_id"] == a["answer_id"]
    assert members[first]["superseded"] and not members[again]["superseded"]
    assert a["outcome"] == "completed" and a["retries"] == 1 and a["requests"] == 2
    assert costs[first]["cost_usd"] > 0
    assert a["retry_cost_usd"] == pytest.approx(costs[first]["cost_usd"])
    assert a["cost_usd"] == pytest.approx(costs[first]["cost_usd"] + costs[again]["cost_usd"])
    assert costs[first]["retried"] and costs[first]["answer_id"] == a["answer_id"]


def test_a_retry_under_the_same_caller_and_a_failed_answer() -> None:
    f = Fleet()
    trace, other = secrets.token_hex(16), secrets.token_hex(16)
    root = f.span(trace, "rag answer", T0 + 0.5, T0 + 12)
    f.span(trace, "retrieval", T0 + 0.6, T0 + 0.9, parent=root,
           attrs={"inferledger.context_tokens": 250})
    timed_out = req(f, T0 + 1, dur=4.0, parent=root, trace=trace, outcome="timeout")
    ok = req(f, T0 + 6, parent=root, trace=trace)
    lost_root = f.span(other, "rag answer", T0 + 30, T0 + 40)
    lost = req(f, T0 + 31, dur=6.0, parent=lost_root, trace=other, outcome="timeout")
    by_answer, members, costs = answers(sampled(f))
    a, b = by_answer[f"trace:{trace}"], by_answer[f"trace:{other}"]
    assert (a["outcome"], a["retries"]) == ("completed", 1)
    assert a["retry_cost_usd"] == pytest.approx(costs[timed_out]["cost_usd"])
    # the retry repeats the prompt the retrieval expanded
    assert members[timed_out]["context_tokens"] == members[ok]["context_tokens"] == 250
    assert (b["outcome"], b["retries"], b["requests"]) == ("failed", 0, 1)
    assert b["cost_usd"] == pytest.approx(costs[lost]["cost_usd"]) and b["cost_usd"] > 0
    assert b["ttft_s"] is None


def test_explicit_ids_group_across_traces_and_the_keys_are_configurable() -> None:
    f = Fleet()
    r1 = req(f, T0 + 1, attrs={"inferledger.answer_id": "order-42"})
    r2 = req(f, T0 + 4, attrs={"inferledger.answer_id": "order-42"})
    t1, t2 = secrets.token_hex(16), secrets.token_hex(16)
    c1 = req(f, T0 + 10, trace=t1, parent=f.span(t1, "turn", T0 + 9.9, T0 + 11.5, attrs={
        "gen_ai.conversation.id": "conv-7"}))
    c2 = req(f, T0 + 14, trace=t2, parent=f.span(t2, "turn", T0 + 13.9, T0 + 15.5, attrs={
        "gen_ai.conversation.id": "conv-7"}))
    sampled(f)
    by_answer, members, _ = answers(f)
    assert members[r1]["answer_id"] == members[r2]["answer_id"] == "inferledger.answer_id:order-42"
    assert by_answer["inferledger.answer_id:order-42"]["traces"] == 2
    assert members[c1]["answer_id"] != members[c2]["answer_id"]  # by default: each its trace
    per_conversation = Settings(answer_keys=("gen_ai.conversation.id", "trace"))
    by_answer, members, _ = answers(f, per_conversation)
    assert members[c1]["answer_id"] == members[c2]["answer_id"] == "gen_ai.conversation.id:conv-7"
    assert by_answer["gen_ai.conversation.id:conv-7"]["requests"] == 2
    assert members[r1]["answer_id"] != members[r2]["answer_id"]  # that key no longer counts


def test_answers_add_up_to_the_requests() -> None:
    f = Fleet()
    trace = secrets.token_hex(16)
    root = f.span(trace, "agent run", T0, T0 + 30)
    for k in range(6):
        req(f, T0 + 1 + 4 * k, dur=3.5, parent=root, trace=trace,
            outcome="ok" if k % 3 else "timeout")
    for k in range(5):
        req(f, T0 + 2 + 5 * k, dur=2.0, attrs={"inferledger.retry_key": f"k{k % 2}"},
            outcome="ok" if k >= 3 else "client_abort")
    con = sampled(f).con()
    ((answers_usd, requests_usd, attributed_usd),) = con.execute(
        "SELECT (SELECT sum(cost_usd) FROM mart_answer_costs), "
        "(SELECT sum(cost_usd) FROM mart_request_costs), "
        "(SELECT sum(cost_usd) FROM mart_spend WHERE allocation = 'attributed')").fetchall()
    assert answers_usd == pytest.approx(requests_usd, rel=1e-12)
    assert requests_usd == pytest.approx(attributed_usd, rel=1e-12)
    ((members, requests),) = con.execute(
        "SELECT (SELECT count(*) FROM int_answers), (SELECT count(*) FROM int_requests)"
    ).fetchall()
    assert members == requests


def test_kv_memory_held_per_request() -> None:
    f = Fleet()
    r = f.request(scheduled=T0 + 1, first_token=T0 + 1.5, finished=T0 + 3.5, gpus=[G],
                  input_tokens=1000, cached_tokens=200, output_tokens=100, model=MODEL)
    unknown = req(f, T0 + 10, model="some-model-of-unknown-shape")
    _, _, costs = answers(sampled(f))
    # the 800 new prompt tokens grow over the 0.5 s prefill, then 800 + 50 on average for 2 s
    assert costs[r]["kv_gb_s"] == pytest.approx(KV_BYTES / 1e9 * (400 * 0.5 + 850 * 2.0))
    assert costs[unknown]["kv_gb_s"] is None


def test_kv_memory_weighting_shares_by_memory_held() -> None:
    import pyarrow as pa
    intervals = pa.table({"gpu_idx": pa.array([1], pa.uint64()), "t0": [0.0], "t1": [10.0],
                          "measured_s": [10.0], "measured_j": [1000.0], "utilization": [1.0],
                          "window": [0]})
    # two decodes side by side for the whole interval: 100 and 300 new prompt tokens
    requests = pa.table({"req_idx": [0, 1], "class_idx": [0, 0], "scheduled_s": [0.0, 0.0],
                         "first_token_s": [0.0, 0.0], "finished_s": [10.0, 10.0],
                         "prefill_tokens": [100.0, 300.0], "decode_tokens": [200.0, 200.0]})
    placements = pa.table({"req_idx": [0, 1], "gpu_idx": pa.array([1, 1], pa.uint64())})
    got = attribute(intervals, requests, placements, method="kv_memory").per_segment
    by_req = {}
    for q, s in zip(got["req_idx"].to_pylist(), got["gpu_seconds"].to_pylist(), strict=True):
        by_req[q] = by_req.get(q, 0.0) + s
    # KV held: 100 + 200/2 = 200 against 300 + 100 = 400 tokens
    assert by_req[1] / by_req[0] == pytest.approx(2.0, rel=1e-3)
    assert sum(by_req.values()) == pytest.approx(10.0)


def test_answer_keys_setting(tmp_path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('[answers]\nkeys = ["agent_context.workflow_id", "trace"]\n')
    assert load_settings(p).answer_keys == ("agent_context.workflow_id", "trace")
    p.write_text('[answers]\nkeys = ["trace", "gen_ai.conversation.id"]\n')
    with pytest.raises(SettingsError, match="only come last"):
        load_settings(p)
    p.write_text('[answers]\nkeys = "trace"\n')
    with pytest.raises(SettingsError, match="keys"):
        load_settings(p)


def test_the_caller_of_a_request_through_a_gateway_is_the_gateways_caller() -> None:
    """Gateway in front of engines that run the middleware: the middleware's span stands for
    the request, and its caller (for context and retries) is the span that called the
    gateway."""
    f = Fleet()
    trace = secrets.token_hex(16)
    root = f.span(trace, "rag answer", T0 + 0.5, T0 + 9)
    f.span(trace, "retrieval", T0 + 0.6, T0 + 0.9, parent=root,
           attrs={"inferledger.context_tokens": 120})
    gateway = f.span(trace, "POST /v1/chat/completions", T0 + 0.95, T0 + 6.5, parent=root,
                     attrs={"inferledger.span.source": "gateway",
                            "gen_ai.request.model": MODEL})
    r = req(f, T0 + 1, dur=5.0, parent=gateway, trace=trace)
    by_answer, members, _ = answers(sampled(f))
    assert len(by_answer) == 1 and members[r]["context_tokens"] == 120
    assert by_answer[f"trace:{trace}"]["requests"] == 1  # the gateway span is not a request
