"""Scenarios, arrivals, the fast batching model, and history sent through a real collector."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from analytics.pipeline import run as run_analytics
from collector.exporters.parquet import wait_published
from simulator.arrivals import arrival_times, draw_request, hourly_share
from simulator.engine.profiles import MODEL_PROFILES
from simulator.gpu_models import GPU_MODELS
from simulator.history.batching import Bins, FluidEngine, Requests
from simulator.history.generate import generate_history
from simulator.loadgen import LoadGenerator
from simulator.scenario import ScenarioError, available, load_scenario
from tests.builders import stored

WEDNESDAY_2PM = datetime(2026, 11, 25, 14, tzinfo=UTC).timestamp()


def test_every_shipped_scenario_loads() -> None:
    assert {"demo", "fleet-16", "bursty"} <= set(available())
    for name in available():
        sc = load_scenario(name)
        assert sc.nodes and sc.apps and sc.description
    fleet = load_scenario("fleet-16")
    assert fleet.gpu_count == 16
    assert {a.kind for a in fleet.apps} == {"chat", "rag", "agent", "summarise", "embeddings",
                                            "batch"}
    assert load_scenario("bursty").nodes == load_scenario("demo").nodes  # fleet = "demo"


BASE = """
[[node]]
name = "n"
gpus = ["h100"]
engines = [{ model = "llama-3.1-8b-instruct", gpus = [0] }]
"""
APP = """
[[app]]
tenant = "t"
name = "a"
kind = "chat"
model = "llama-3.1-8b-instruct"
peak_per_min = 10
prompt = { median = 100 }
output = { median = 50 }
"""


@pytest.mark.parametrize(("text", "says"), [
    (BASE + APP.replace('kind = "chat"', 'kind = "poetry"'), "kind 'poetry' is not one of"),
    (BASE + APP + "colour = 1\n", "unknown field(s) colour"),
    (BASE.replace("gpus = [0]", "gpus = [1]") + APP, "must index this node's 1 GPU"),
    (BASE.replace("llama-3.1-8b-instruct", "gpt-9") + APP, "unknown model 'gpt-9'"),
    (BASE + APP.replace('kind = "chat"', 'kind = "batch"'), "a batch app needs window"),
    (BASE + APP.replace("peak_per_min = 10", "peak_per_min = -1"), "must be positive"),
    (BASE + APP.replace('model = "llama-3.1-8b-instruct"\npeak',
                        'model = "qwen2.5-32b-instruct"\npeak'), "which no engine serves"),
    (BASE + APP.replace("[[app]]", "[[app]]\nstream_share = 2"), "not between 0 and 1"),
    (BASE + APP + "steps = { median = 3 }\n", 'are for kind = "agent"'),
    (BASE + APP + "retries = 9\n", "retries = 9 must be a whole number 0–5"),
    (BASE, "needs at least one [[app]] table"),
    ("this is = = not toml", "scenario.toml"),
])
def test_bad_scenarios_name_the_file_and_field(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert says in str(e.value)
    assert "scenario.toml" in str(e.value)


def test_unknown_scenario_name_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match=r"known: .*fleet-16"):
        load_scenario("nope")


def _hourly_counts(times: np.ndarray, start: float) -> np.ndarray:
    return np.bincount(((times - start) // 3600).astype(int), minlength=7 * 24)


def test_arrivals_follow_the_daily_shape_the_weekend_and_the_batch_window() -> None:
    sc = load_scenario("fleet-16")
    apps = {a.name: a for a in sc.apps}
    monday = datetime(2026, 11, 23, tzinfo=UTC).timestamp()
    week = (monday, monday + 7 * 86400)
    chat = _hourly_counts(arrival_times(apps["ticket-summaries"], *week, random.Random(1)),
                          monday).reshape(7, 24)
    assert chat[:5, 10].mean() > 10 * chat[:5, 3].mean()  # weekday 10:00 vs 03:00
    assert chat[5:, 10].mean() < 0.4 * chat[:5, 10].mean()  # the weekend is quieter
    evening = _hourly_counts(arrival_times(apps["assistant"], *week, random.Random(1)),
                             monday).reshape(7, 24)
    assert evening[:, 20].mean() > 3 * evening[:, 4].mean()
    batch = _hourly_counts(arrival_times(apps["nightly-summaries"], *week, random.Random(1)),
                           monday).reshape(7, 24)
    assert batch[:, 1:5].min() > 0 and batch[:, 5:].sum() == 0 and batch[:, 0].sum() == 0
    assert hourly_share(apps["nightly-summaries"], monday + 2 * 3600) == 1.0


def test_bursts_raise_the_rate_for_their_length() -> None:
    bursty = next(a for a in load_scenario("bursty").apps if a.bursts)
    start = WEDNESDAY_2PM
    calm = bursty.__class__(**{**bursty.__dict__, "bursts": None})
    n_calm = len(arrival_times(calm, start, start + 86400, random.Random(3)))
    n_bursty = len(arrival_times(bursty, start, start + 86400, random.Random(3)))
    # 72 bursts of 3 min at 12× add ~2.4 days' worth of minutes to a flat day.
    assert n_bursty > 1.8 * n_calm


def test_request_lengths_are_heavy_tailed_and_fit_the_context() -> None:
    app = next(a for a in load_scenario("fleet-16").apps if a.kind == "rag")
    rng = random.Random(5)
    draws = [draw_request(app, rng, 8192) for _ in range(5000)]
    prompts = np.array([d.prompt_tokens for d in draws])
    assert abs(np.median(prompts) - app.prompt.median) < 0.1 * app.prompt.median
    assert np.percentile(prompts, 99) > 2.5 * np.median(prompts)
    assert all(d.prompt_tokens + d.max_tokens <= 8192 and d.output_tokens <= d.max_tokens
               for d in draws)


def _engine(n: int, rate_per_s: float, output: int = 200, timeout: float = np.inf
            ) -> tuple[Requests, Bins]:
    rng = np.random.default_rng(0)
    arrival = 1000.0 + np.cumsum(rng.exponential(1 / rate_per_s, n))
    req = Requests(arrival, np.full(n, 500), np.full(n, output), np.full(n, 1 << 30),
                   arrival + timeout)
    bins = Bins(1000.0, int((arrival[-1] - 1000) // 60) + 600)
    FluidEngine(MODEL_PROFILES["llama-3.1-8b-instruct"], GPU_MODELS["h100"], 1,
                max_waiting=50).run(req, bins)
    return req, bins


def test_batching_model_keeps_vllm_clock_order_and_batches_under_load() -> None:
    light, _ = _engine(200, 0.05)
    heavy, bins = _engine(3000, 40.0)
    for r in (light, heavy):
        ok = np.array([o == "ok" for o in r.outcome])
        assert ok.any()
        assert (r.scheduled[ok] >= r.arrival[ok]).all()
        assert (r.first_token[ok] >= r.scheduled[ok]).all()
        assert (r.finished[ok] > r.first_token[ok]).all()
        assert (r.generated[ok] == 200).all()
    # Alone, a reply takes ~200 decode steps of a few ms; batched, the step grows but many
    # replies share it, so throughput rises far more than latency.
    light_e2e = np.median(light.finished - light.arrival)
    heavy_e2e = np.median(heavy.finished - heavy.arrival)
    assert 0.5 < light_e2e < 3 and light_e2e < heavy_e2e
    span = heavy.finished.max() - heavy.arrival.min()
    assert len(heavy.arrival) / span > 10 * (1 / light_e2e)
    assert min(bins.extra_j) >= 0 and max(b / 60 for b in bins.busy_s) <= 1 + 1e-9


def test_overload_fills_the_queue_then_answers_503_and_clients_time_out() -> None:
    r, _ = _engine(4000, 400.0, output=300, timeout=5.0)
    outcomes = set(r.outcome)
    assert {"ok", "rejected", "timeout"} <= outcomes
    timed_out = np.array([o == "timeout" for o in r.outcome])
    assert np.allclose(r.finished[timed_out] - r.arrival[timed_out], 5.0)


def test_a_retry_arrives_after_the_time_out_and_the_next_step_after_the_reply() -> None:
    nan, inf = np.nan, np.inf
    # 0: a reply too long for its 2 s; 1: its retry, shorter; 2: the next step; 3: a second
    # retry that is never needed
    req = Requests(np.array([1000.0, nan, nan, nan]), np.full(4, 300),
                   np.array([2000, 50, 50, 50]), np.full(4, 1 << 30),
                   np.array([1002.0, inf, inf, inf]),
                   on_ok=np.array([2, 2, -1, 2]), on_fail=np.array([1, 3, -1, -1]),
                   delay=np.array([0.0, 1.0, 0.5, 2.0]), patience=np.full(4, 2.0))
    FluidEngine(MODEL_PROFILES["llama-3.1-8b-instruct"], GPU_MODELS["h100"], 1).run(
        req, Bins(1000.0, 10))
    assert req.outcome[:3] == ["timeout", "ok", "ok"]
    assert req.finished[0] == pytest.approx(1002.0)
    assert req.arrival[1] == pytest.approx(1003.0) and req.deadline[1] == pytest.approx(1005.0)
    assert req.arrival[2] == pytest.approx(req.finished[1] + 0.5)
    assert np.isnan(req.arrival[3])


def test_live_load_follows_the_hour_of_day() -> None:
    apps = load_scenario("fleet-16").apps
    gen = LoadGenerator({a.model: ["http://x"] for a in apps}, apps, seed=1)
    at_2am = datetime(2026, 11, 25, 2, tzinfo=UTC).timestamp()
    night = Counter(gen.pick_app(at_2am).name for _ in range(1000))
    day = Counter(gen.pick_app(WEDNESDAY_2PM).name for _ in range(1000))
    assert night["nightly-classification"] > 10 * max(night["ticket-summaries"], 1)
    assert day["nightly-classification"] == day["nightly-summaries"] == 0
    assert day["ticket-summaries"] > 0


def test_history_through_a_real_collector_into_the_analytics(data, collector) -> None:
    sc = load_scenario("demo")
    stats = generate_history(sc, 3 / 24, f"http://127.0.0.1:{collector.http_port}",
                             end=WEDNESDAY_2PM, seed=11)
    assert stats.requests > 1000 and stats.points > 0
    assert wait_published(data)  # what was acknowledged, visible, as the demo waits for it
    summary = run_analytics(data)
    assert summary.conservation_max_rel_error < 1e-9
    [(requests, simulated, placed)] = stored(data, """
        SELECT count(*), bool_and(simulated), avg(placed::INT) FROM request_costs""")
    assert requests == stats.requests and simulated and placed == 1.0
    by_route = dict(stored(data, """
        SELECT route, avg(other_spans_s) FROM requests WHERE outcome = 'ok' GROUP BY route"""))
    assert 0.05 < by_route["contract-rag"] < 0.5  # the retrieval step, not the app's root span
    assert by_route["support-chat"] == 0
    outcomes = {o for (o,) in stored(data, "SELECT DISTINCT outcome FROM requests")}
    assert {"ok", "error", "client_abort"} <= outcomes
    # Answers: an agent's steps with tool calls between, a RAG answer's retrieved context,
    # clients' retries after time-outs booked to the answer they retried
    by_app = {r[0]: r[1:] for r in stored(data, """
        SELECT route, avg(requests), sum(retries), avg(other_spans_s),
               sum(context_tokens) / sum(input_tokens),
               count_if(retries > 0 AND retry_cost_usd > 0 AND requests > 1)
        FROM answer_costs GROUP BY route""")}
    agent, rag, chat = by_app["ops-agent"], by_app["contract-rag"], by_app["support-chat"]
    assert agent[0] > 2 and agent[2] > 0.2 and 0.2 < agent[3] < 0.9
    assert rag[3] == pytest.approx(0.9, abs=0.01) and rag[1] > 0 and rag[4] == rag[1]
    assert chat[0] == 1 and chat[3] is None
    [(answers_usd, requests_usd)] = stored(data, """
        SELECT (SELECT sum(cost_usd) FROM answer_costs),
               (SELECT sum(cost_usd) FROM request_costs)""")
    assert answers_usd == pytest.approx(requests_usd, rel=1e-9)
    [(first, last, gpus)] = stored(data, """
        SELECT min(ts_s), max(ts_s), count(DISTINCT gpu_uuid) FROM stg_gpu_samples""")
    assert gpus == 4 and last == WEDNESDAY_2PM and first <= WEDNESDAY_2PM - 3 * 3600 + 60
    # The energy counter is the integral of the power the samples report.
    [(counter, integral)] = stored(data, """
        SELECT sum(e1 - e0), sum(p1 * (t1 - t0)) FROM (
            SELECT energy_j AS e0, lead(energy_j) OVER w AS e1, ts_s AS t0,
                   lead(ts_s) OVER w AS t1, lead(power_w) OVER w AS p1
            FROM stg_gpu_samples WINDOW w AS (PARTITION BY gpu_uuid ORDER BY ts_s))
        WHERE t1 IS NOT NULL""")
    assert counter == pytest.approx(integral, rel=1e-6)
    # Idle stretches are bracketed by samples, so a quiet GPU's hours are booked as idle.
    [(idle, useful)] = stored(data, """
        SELECT sum(idle_s), sum(useful_s) FROM gpu_time""")
    assert idle > 0 and useful > 0
    # Each engine's model loading is timed from vLLM's own start-up span, as live.
    [(engines, from_vllm)] = stored(data, """
        SELECT count(*), count_if(start_source = 'vllm') FROM stg_engine_startups""")
    assert engines == 3 and from_vllm == engines


def test_sim_history_command_prints_its_rate(data, collector) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "commands", "sim", "history", "--scenario", "bursty",
         "--days", "30m", "--endpoint", f"http://127.0.0.1:{collector.http_port}"],
        capture_output=True, text=True, timeout=120, check=True).stdout
    assert "simulated day(s) of 4 GPUs" in out and "days per minute" in out
    bad = subprocess.run([sys.executable, "-m", "commands", "sim", "history", "--days", "x"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a duration like 7d" in bad.stderr
