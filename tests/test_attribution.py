"""Hand-checked attribution scenarios: the exact split users can verify on paper."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.attribution import METHODS, prefill_cost_per_token
from analytics.settings import ModelShape, Settings
from tests.builders import Fleet, rows

T0 = 1_800_000_000.0
G = "GPU-aaaaaaaa-0000-0000-0000-000000000001"
G2 = "GPU-aaaaaaaa-0000-0000-0000-000000000002"


def per_request(con) -> dict[str, tuple[float, float]]:
    return {r["request_uid"]: (r["gpu_seconds"], r["energy_j"])
            for r in rows(con, "SELECT request_uid, gpu_seconds, energy_j FROM mart_request_costs")}


def two_overlapping() -> tuple[Fleet, str, str]:
    f = Fleet()
    # A decodes 100 tokens over [0, 2): 50 tokens per second. B decodes 50 tokens over [1, 2).
    a = f.request(scheduled=T0, first_token=T0, finished=T0 + 2, gpus=[G], output_tokens=100)
    b = f.request(scheduled=T0 + 1, first_token=T0 + 1, finished=T0 + 2, gpus=[G],
                  output_tokens=50)
    for t, e in ((0, 0.0), (1, 100.0), (2, 300.0)):
        f.sample(G, T0 + t, energy_j=e)
    return f, a, b


def test_work_weighted_split_of_two_overlapping_requests() -> None:
    f, a, b = two_overlapping()
    got = per_request(f.con())
    # [0,1): A alone → 1 s, 100 J. [1,2): 50 vs 50 tokens → 0.5 s and 100 J each.
    assert got[a] == pytest.approx((1.5, 200.0))
    assert got[b] == pytest.approx((0.5, 100.0))


def test_time_overlap_mode_shares_every_instant_equally() -> None:
    f, a, b = two_overlapping()
    got = per_request(f.con(Settings(method="time_overlap")))
    assert got[a] == pytest.approx((1.5, 200.0))
    assert got[b] == pytest.approx((0.5, 100.0))


def test_a_short_request_gets_its_overlap_not_the_interval() -> None:
    """A 3 ms failed request alone in a 25 s sample interval: 3 ms of GPU time, and the
    joules above what the GPU draws idle (40 W, measured in the interval before)."""
    f, t = Fleet(), T0 + 100
    r = f.request(scheduled=t + 10, first_token=t + 10.001, finished=t + 10.003, gpus=[G],
                  input_tokens=10, output_tokens=0, outcome="error")
    f.sample(G, t - 25, energy_j=0.0)
    f.sample(G, t, energy_j=1000.0)  # idle: 40 W
    f.sample(G, t + 25, energy_j=1000.0 + 40 * 24.997 + 0.9)
    con = f.con()
    assert per_request(con)[r] == pytest.approx((0.003, 0.9), rel=1e-4)
    g = gpu_time(con)
    assert g["failed_s"] == pytest.approx(0.003, rel=1e-4)
    assert (g["idle_s"], g["idle_j"]) == pytest.approx((49.997, 1000.0 + 40 * 24.997))


def test_a_request_turned_away_at_the_edge_holds_no_gpu_time() -> None:
    """A 404 (unknown model) the middleware answered: no engine span, so no GPU time, even
    with the engine's GPUs on its span; it is placed nowhere at zero cost, not unplaced."""
    f = Fleet()
    r = f.request(scheduled=T0 + 0.2, first_token=T0 + 0.2011, finished=T0 + 0.2011, gpus=[G],
                  outcome="error", status=404, engine_span=False)
    f.sample(G, T0, energy_j=0.0)
    f.sample(G, T0 + 1, energy_j=60.0)
    con = f.con()
    [row] = rows(con, "SELECT * FROM mart_request_costs")
    assert row["request_uid"] == r and not row["reached_engine"] and row["placed"]
    assert (row["gpu_seconds"], row["cost_usd"], row["gpu_uuids"]) == (0, 0, [])
    assert row["placement_source"] == "not_served"
    assert (gpu_time(con)["idle_s"], gpu_time(con)["idle_j"]) == pytest.approx((1.0, 60.0))


def test_prefill_tokens_are_weighted() -> None:
    f = Fleet()
    # A: prefill of 400 prompt tokens over [0,1) then nothing; B: 100 decode tokens over [0,1).
    a = f.request(scheduled=T0, first_token=T0 + 1, finished=T0 + 1, gpus=[G],
                  input_tokens=400, output_tokens=1)
    b = f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[G], output_tokens=100)
    f.sample(G, T0, energy_j=0.0)
    f.sample(G, T0 + 1, energy_j=50.0)
    got = per_request(f.con(Settings(method="work", prefill_token_weight=0.25)))
    # work: A = 400 × 0.25 = 100, B = 100 → half each.
    assert got[a] == pytest.approx((0.5, 25.0))
    assert got[b] == pytest.approx((0.5, 25.0))


def test_gpu_time_gives_a_prefill_its_share_of_the_gpu_and_decodes_the_rest() -> None:
    """Ten lone prefills elsewhere show this GPU model computes a prompt token in 0.1 ms. B
    prefills 2,000 tokens over [0, 0.5): 0.2 s of compute, 40% of the GPU; A, decoding
    from 0 to 1, has the other 60% of [0, 0.5) and all of [0.5, 1)."""
    f = Fleet()
    for k in range(10):
        s = T0 + 10 + k
        f.request(scheduled=s, first_token=s + 0.1, finished=s + 0.1, gpus=[G2],
                  input_tokens=1000, output_tokens=0)
    a = f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[G], output_tokens=100)
    b = f.request(scheduled=T0, first_token=T0 + 0.5, finished=T0 + 0.5, gpus=[G],
                  input_tokens=2000, output_tokens=0)
    f.sample(G, T0, energy_j=0.0)
    f.sample(G, T0 + 1, energy_j=100.0)
    got = per_request(f.con(Settings(method="gpu_time")))
    assert got[a] == pytest.approx((0.8, 80.0))
    assert got[b] == pytest.approx((0.2, 20.0))


def test_the_compute_per_prompt_token_leaves_out_the_step_fixed_cost() -> None:
    """Lone prefills take a step's fixed 5 ms + 0.1 ms a token: the fastest per token are
    the longest, still 0.1 ms + 5 ms / tokens each; the line through them has slope 0.1 ms."""
    tokens = np.linspace(64, 4000, 400)
    req = {"scheduled_s": np.zeros(400), "first_token_s": 0.005 + 1e-4 * tokens,
           "prefill_tokens": tokens}
    assert prefill_cost_per_token(req, np.arange(400)) == pytest.approx(1e-4, rel=1e-9)
    # Too few to tell: none; all of one length: the low quantile of seconds per token.
    assert prefill_cost_per_token(req, np.arange(9)) is None
    req["prefill_tokens"] = np.full(400, 1000.0)
    assert prefill_cost_per_token(req, np.arange(400)) == pytest.approx(
        np.quantile(req["first_token_s"] / 1000.0, 0.05))


# A model whose weights read as much as 100,000 tokens of KV cache.
SHAPED = Settings(models=(ModelShape("m", weight_bytes=1e8, kv_bytes_per_token=1000.0),))
STEP = (0.030, 0.001, 0.020)  # a decode step: 30 ms + 1 ms a sequence + 20 ms a weights' read
OUT = 101


def decode_blocks(f: Fleet, t: float) -> tuple[float, float, dict[str, float]]:
    """Eight blocks of 1–4 decodes running together from a prefix-cache hit, each block at
    the pace :data:`STEP` gives its company, with an idle second between blocks; returns
    the end, the energy counter there and each decode's share as the step divides: the
    fixed part equally, its own sequence's and context's parts."""
    fixed, per_seq, per_ctx = STEP
    expected, energy = {}, 0.0
    for block in range(8):
        n = block % 4 + 1
        prompts = [10_000 * (block + 1) + 5_000 * i for i in range(n)]
        ctx = [(p + OUT / 2) / 100_000 for p in prompts]
        step = fixed + per_seq * n + per_ctx * sum(ctx)
        d = step * (OUT - 1)
        for p, c in zip(prompts, ctx, strict=True):
            uid = f.request(scheduled=t, first_token=t, finished=t + d, gpus=[G],
                            input_tokens=p, cached_tokens=p, output_tokens=OUT)
            expected[uid] = d * (fixed / n + per_seq + per_ctx * c) / step
        f.sample(G, t, energy_j=energy)
        energy += 300.0 * d
        f.sample(G, t + d, energy_j=energy)
        energy += 60.0
        t += d + 1.0
    f.sample(G, t, energy_j=energy)
    return t, energy, expected


def test_decodes_share_a_step_by_the_weights_and_the_context_they_read() -> None:
    """The decode step model is fitted from the decodes' own pace and company, and each
    step's time divides as the model says: a request with a long context reads more."""
    f = Fleet()
    *_, expected = decode_blocks(f, T0)
    got = per_request(f.con(SHAPED))
    assert {u: got[u][0] for u in expected} == pytest.approx(expected, rel=1e-6)
    # Without the model's shape (not in the settings) the same decodes share equally.
    equal = per_request(f.con(Settings(models=())))
    pair = list(expected)[1:3]  # the second block's two decodes
    assert equal[pair[0]][0] == pytest.approx(equal[pair[1]][0])
    assert got[pair[0]][0] < got[pair[1]][0]  # the second has 5,000 more tokens of context


def test_a_served_model_name_finds_its_shape_after_its_namespace() -> None:
    """vLLM serves models under their hub names: the shape of ``llama-3.1-8b-instruct``
    applies to ``Meta-Llama/Llama-3.1-8B-Instruct``; an unknown model reads no context."""
    f = Fleet()
    known = f.request(scheduled=T0, first_token=T0 + 0.1, finished=T0 + 1, gpus=[G],
                      input_tokens=1000, output_tokens=100,
                      model="Meta-Llama/Llama-3.1-8B-Instruct")
    unknown = f.request(scheduled=T0, first_token=T0 + 0.1, finished=T0 + 1, gpus=[G],
                        input_tokens=1000, output_tokens=100, model="acme/unknown-1")
    f.sample(G, T0, energy_j=0.0)
    f.sample(G, T0 + 1, energy_j=100.0)
    ctx = {r["request_uid"]: r["context"] for r in rows(
        f.con(), "SELECT request_uid, context FROM int_request_work")}
    assert ctx[known] == pytest.approx(1050 / (8.03e9 * 2 / (2 * 32 * 8 * 128 * 2)))
    assert ctx[unknown] == 0


@pytest.mark.parametrize("prompt", [1000, 3800, 4000])
def test_a_decode_beside_a_prefill_asks_for_what_the_step_leaves(prompt) -> None:
    """Beside a prefill's compute asking p of the GPU (0.1 ms a token, from ten lone
    prefills elsewhere, over 0.4 s), the step both sequences take part in asks all of its
    time while that compute hides under the reads (p = 0.25), less once the step is
    compute-bound and grows to cpu / (1 − p) (p = 0.95), nothing when the prefill takes the
    whole GPU. The step's own time divides by the step model, the prefill a member."""
    f = Fleet()
    for k in range(10):
        s = T0 + 10 + k
        f.request(scheduled=s, first_token=s + 0.1, finished=s + 0.1, gpus=[G2],
                  input_tokens=1000, output_tokens=0)
    t, energy, _ = decode_blocks(f, T0 + 100)
    dec = f.request(scheduled=t, first_token=t, finished=t + 1, gpus=[G], input_tokens=10_000,
                    cached_tokens=10_000, output_tokens=50)
    pre = f.request(scheduled=t, first_token=t + 0.4, finished=t + 0.4, gpus=[G],
                    input_tokens=prompt, output_tokens=0)
    f.sample(G, t + 1, energy_j=energy + 300.0)
    got = per_request(f.con(SHAPED))
    fixed, per_seq, per_ctx = STEP
    p = min(1.0, 1e-4 * prompt / 0.4)
    ctx = (10_000 + 25) / 100_000
    alone = fixed + 2 * per_seq + per_ctx * ctx  # two sequences in the step
    asks = min((1 - p) * alone / (fixed - per_ctx + 2 * per_seq), 1.0)
    in_step = 0.4 * asks / (p + asks) / alone
    # (epoch seconds hold ~2e-7 s: the measured 0.1 ms a token is off by ~2e-6, which the
    # compute-bound step magnifies)
    assert got[pre][0] == pytest.approx(0.4 * p / (p + asks) + in_step * (fixed / 2 + per_seq),
                                        abs=1e-4)
    assert got[dec][0] == pytest.approx(
        0.6 + in_step * (fixed / 2 + per_seq + per_ctx * ctx), abs=1e-4)
    assert got[pre][0] + got[dec][0] == pytest.approx(1.0, rel=1e-6)


def test_tensor_parallel_request_spans_both_gpus_and_idle_is_booked() -> None:
    f = Fleet()
    r = f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[G, G2], output_tokens=10)
    for g in (G, G2):
        f.sample(g, T0, energy_j=0.0)
        f.sample(g, T0 + 1, energy_j=300.0, utilization=1.0)
        f.sample(g, T0 + 3, energy_j=400.0)  # [1,3) idle: 2 s, 100 J per GPU
    con = f.con()
    assert per_request(con)[r] == pytest.approx((2.0, 600.0))
    gpu = {x["gpu_uuid"]: x for x in rows(con, "SELECT * FROM mart_gpu_time")}
    for g in (G, G2):
        assert gpu[g]["useful_s"] == pytest.approx(1.0)
        assert gpu[g]["idle_s"] == pytest.approx(2.0)
        assert gpu[g]["idle_j"] == pytest.approx(100.0)


def test_counter_reset_falls_back_to_power_integral() -> None:
    f = Fleet()
    r = f.request(scheduled=T0, first_token=T0, finished=T0 + 2, gpus=[G], output_tokens=10)
    f.sample(G, T0, energy_j=5000.0, power_w=100.0)
    f.sample(G, T0 + 2, energy_j=10.0, power_w=300.0)  # driver reloaded: counter restarted
    con = f.con()
    # trapezoid of the two power readings: (100 + 300) / 2 × 2 s
    assert per_request(con)[r] == pytest.approx((2.0, 400.0))
    src = rows(con, "SELECT energy_source FROM int_gpu_intervals")
    assert src == [{"energy_source": "power_integral"}]


def test_outcomes_land_in_waste_buckets_and_unplaced_stay_visible() -> None:
    f = Fleet()
    ok = f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[G], output_tokens=10)
    ab = f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[G], output_tokens=10,
                   outcome="client_abort", engine_span=False)
    lost = f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[], output_tokens=10)
    f.sample(G, T0, energy_j=0.0)
    f.sample(G, T0 + 1, energy_j=100.0)
    con = f.con()
    got = {x["request_uid"]: x for x in rows(con, "SELECT * FROM mart_request_costs")}
    # The aborted request is known from its edge span only (its window is the edge span's,
    # 1 ms wider), so the split is ~half each; together they take the whole interval.
    assert got[ok]["placed"] and got[ok]["gpu_seconds"] == pytest.approx(0.5, rel=1e-2)
    assert got[ab]["work_class"] == "aborted" and got[ab]["seen_by"] == "edge_only"
    assert got[ok]["gpu_seconds"] + got[ab]["gpu_seconds"] == pytest.approx(1.0)
    assert not got[lost]["placed"] and got[lost]["cost_usd"] is None
    gpu = rows(con, "SELECT useful_s, aborted_s FROM mart_gpu_time")[0]
    assert gpu["useful_s"] == pytest.approx(got[ok]["gpu_seconds"])
    assert gpu["aborted_s"] == pytest.approx(got[ab]["gpu_seconds"])


def test_cost_is_priced_from_the_pricing_file() -> None:
    f, a, _ = two_overlapping()
    got = rows(f.con(), "SELECT * FROM mart_request_costs")
    row = next(x for x in got if x["request_uid"] == a)
    per_hour = 30000 / (4 * 8760)  # the example file's H100: owned, 4-year amortization
    energy_usd = 200.0 / 3.6e6 * 1.3 * 0.12
    assert row["cost_usd"] == pytest.approx(1.5 * per_hour / 3600 + energy_usd)
    assert row["carbon_g"] == pytest.approx(200.0 / 3.6e6 * 1.3 * 380)
    assert row["pricing_version"] == "example-2026-11"
    assert row["attribution_method"] == "gpu_time"


def gpu_time(con) -> dict:
    return rows(con, "SELECT * FROM mart_gpu_time")[0]


def test_recomputation_after_preemption_is_booked_as_preempted() -> None:
    f = Fleet()
    # A decodes 100 tokens over [0,1). In the same scrape interval the engine preempted 2
    # requests; at the closing scrape 50% of its 3200-token KV cache was in use by 4 running
    # requests: 400 tokens each, 800 recomputed, × 0.25 = 200 units of work against A's 100.
    a = f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[G], output_tokens=100)
    f.engine_scrape(T0, preemptions=3, kv_usage=0.1, running=1, kv_cache_size_tokens=3200,
                    gpus=[G])
    f.engine_scrape(T0 + 1, preemptions=5, kv_usage=0.5, running=4, kv_cache_size_tokens=3200,
                    gpus=[G])
    f.sample(G, T0, energy_j=0.0)
    f.sample(G, T0 + 1, energy_j=90.0, utilization=1.0)
    con = f.con(Settings(method="work"))
    assert per_request(con)[a] == pytest.approx((1 / 3, 30.0))
    g = gpu_time(con)
    assert (g["useful_s"], g["preempted_s"], g["preempted_j"]) == pytest.approx((1 / 3, 2 / 3,
                                                                                60.0))
    [r] = rows(con, "SELECT tokens FROM int_recompute")
    assert r["tokens"] == pytest.approx(800)


@pytest.mark.parametrize("utilization", [1.0, 0.6, 0.0])
def test_recomputation_with_no_request_holds_what_the_gpu_reported_busy(utilization) -> None:
    """With no request active (no tracing, say), recomputation holds the share of the time
    the GPU reported busy; a restarted engine's counter counts from zero."""
    f = Fleet()
    for t, v in ((0, 1000), (1, 4)):  # restarted: 4 preemptions since
        f.engine_scrape(T0 + t, preemptions=v, kv_usage=0.5, running=2,
                        kv_cache_size_tokens=3200, gpus=[G])
    f.sample(G, T0, energy_j=0.0)
    f.sample(G, T0 + 1, energy_j=80.0, utilization=utilization)
    con = f.con()
    assert rows(con, "SELECT tokens FROM int_recompute") == [{"tokens": 3200.0}]
    g = gpu_time(con)
    assert (g["preempted_s"], g["idle_s"], g["unaccounted_s"]) == pytest.approx(
        (utilization, 1.0 - utilization, 0.0))


def test_engine_start_up_is_model_loading_and_placed_by_pid() -> None:
    f = Fleet()
    # The engine (pid 7) started at 0 and served from 1.5; its span has no GPU tags, so the
    # agent's process samples place it. [0,1) loading; [1,2) half loading, half busy with no
    # request (unaccounted); [2,3) idle.
    f.startup(T0, T0 + 1.5, gpus=[], pid=7)
    f.process(G, T0 + 1, 7)
    for t, e, u in ((0, 0.0, 0.0), (1, 100.0, 0.5), (2, 200.0, 0.5), (3, 260.0, 0.0)):
        f.sample(G, T0 + t, energy_j=e, utilization=u)
    g = gpu_time(f.con())
    assert (g["model_loading_s"], g["unaccounted_s"], g["idle_s"]) == pytest.approx((1.5, 0.5, 1.0))
    assert (g["model_loading_j"], g["unaccounted_j"], g["idle_j"]) == pytest.approx((150, 50, 60))


def test_request_placed_by_pid_when_its_span_has_no_gpus() -> None:
    f = Fleet()
    r = f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[], output_tokens=10)
    f.process(G, T0 + 0.5, 42)  # the middleware's process (pid 42) on G
    f.sample(G, T0, energy_j=0.0)
    f.sample(G, T0 + 1, energy_j=50.0, utilization=1.0)
    con = f.con()
    assert per_request(con)[r] == pytest.approx((1.0, 50.0))
    assert rows(con, "SELECT placement_source FROM int_request_gpus") == [
        {"placement_source": "process_match"}]


@pytest.mark.parametrize("method", METHODS)
def test_a_tiny_window_after_a_large_one_is_attributed_exactly(method) -> None:
    f = Fleet()
    # The hour turns at T0 + 40. A running sum over both hours would cancel the second
    # hour's 1e-62 J against the first hour's 10 J; sums restart per window instead. The
    # request occupies 25 of the first 40 s and 1 ms of the last second; never seen idle,
    # the GPU's free seconds take their time-proportional joules.
    t0 = T0 - 40
    r = f.request(scheduled=t0 + 15, first_token=t0 + 20, finished=t0 + 40.001, gpus=[G],
                  output_tokens=5)
    f.sample(G, t0, energy_j=1.0, power_w=0.25)
    f.sample(G, t0 + 40, energy_j=0.0, power_w=0.25)  # counter reset: the power integral, 10 J
    f.sample(G, t0 + 41, energy_j=1e-62, power_w=0.0)
    con = f.con(Settings(method=method))
    hours = sorted(rows(con, "SELECT hour, energy_j FROM int_attribution"),
                   key=lambda x: x["hour"])
    assert hours[0]["energy_j"] == pytest.approx(6.25, rel=1e-9)
    # 1 ms of a 1 s interval, the millisecond as exact as epoch seconds hold it (≈2e-7 s)
    assert hours[1]["energy_j"] == pytest.approx(1e-65, rel=1e-3, abs=0)
    assert per_request(con)[r][1] == pytest.approx(6.25)


def test_a_grazed_interval_does_not_spoil_the_rest_of_its_window() -> None:
    """A request that only grazes an interval (microseconds of overlap) gives that interval a
    tiny total weight and so a huge share per unit of weight; summed into the window's
    running total, its rounding used to swamp later requests' takes (seen in history data as
    conservation off by 2e-9)."""
    f = Fleet()
    t0 = T0 - 600
    for i in range(7):
        f.sample(G, t0 + 60 * i, energy_j=60.0 * 400 * i)
    # A slow prefill of a short prompt ends 1 µs into the second interval: its only work
    # there, so that interval's total weight is ~1e-7.
    f.request(scheduled=t0 + 0.5, first_token=t0 + 60.000001, finished=t0 + 60.000001,
              gpus=[G], input_tokens=40, output_tokens=0)
    # A long reply covering several whole intervals later in the same hour.
    f.request(scheduled=t0 + 150, first_token=t0 + 151, finished=t0 + 330, gpus=[G],
              input_tokens=100, output_tokens=5000)
    con = f.con()
    [c] = rows(con, "SELECT max(greatest(rel_error_s, rel_error_j)) AS e FROM mart_conservation")
    assert c["e"] < 1e-13


@pytest.mark.parametrize("method", METHODS)
def test_a_tiny_rate_does_not_spoil_the_rest_of_its_window(method) -> None:
    """A reply of 2 tokens over 20 minutes decodes at 0.0017 tokens/s, alone: its pieces'
    seconds per unit of rate are huge. A prefill of 8,000 tokens over 0.9 s later in the same
    hour, across a sample boundary, has a rate a million times larger; differences of a
    running sum over the window would lose its digits."""
    f, t0 = Fleet(), T0 + 60
    f.request(scheduled=t0, first_token=t0 + 0.01, finished=t0 + 1200, gpus=[G],
              input_tokens=10, output_tokens=2)
    late = f.request(scheduled=t0 + 1300, first_token=t0 + 1300.9, finished=t0 + 1300.95,
                     gpus=[G], input_tokens=8000, output_tokens=1)
    for k in [*range(0, 1400, 50), 1300.5]:
        f.sample(G, t0 + k, energy_j=300.0 * k)
    con = f.con(Settings(method=method))
    [c] = rows(con, "SELECT max(greatest(rel_error_s, rel_error_j)) AS e FROM mart_conservation")
    assert c["e"] < 1e-13
    assert per_request(con)[late][0] == pytest.approx(0.95, rel=1e-6)  # as epoch floats hold it
