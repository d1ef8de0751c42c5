"""Properties of the split itself, beyond conservation: occupancy (no request's GPU-seconds
in a sample interval exceed its own overlap with that interval) and one row per response.

The kernel is driven directly with every sample interval its own window, so its per-window
results are per-interval results."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.attribution import BUCKETS, METHODS, MIN_SEGMENT_S, attribute
from tests.builders import Fleet, rows

GPUS = (11, 22)
req = st.fixed_dictionaries({
    "start": st.floats(0, 30), "prefill": st.floats(0, 3), "decode": st.floats(0, 10),
    "inp": st.integers(0, 4000), "out": st.integers(0, 500), "cls": st.integers(0, 3),
    "gpus": st.lists(st.sampled_from(GPUS), min_size=1, max_size=2, unique=True),
})
grid = st.lists(st.tuples(st.floats(0.001, 8), st.floats(0, 900), st.booleans(),
                          st.floats(0, 1)), min_size=1, max_size=10)


def _presence(r: dict) -> list[tuple[float, float]]:
    """A request's phases as the kernel sees them (each at least 1 ms long)."""
    s, f = r["start"], r["start"] + r["prefill"]
    fin = f + r["decode"]
    return [(s, max(f, s + MIN_SEGMENT_S)), (f, max(fin, f + MIN_SEGMENT_S))]


def _overlap(spans: list[tuple[float, float]], a: float, b: float) -> float:
    pts = sorted((max(x, a), min(y, b)) for x, y in spans if min(y, b) > max(x, a))
    total, end = 0.0, -np.inf
    for x, y in pts:
        x = max(x, end)
        if y > x:
            total += y - x
            end = y
    return total


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=st.lists(req, max_size=10), per_gpu=st.lists(grid, min_size=2, max_size=2),
       method=st.sampled_from(METHODS))
def test_no_request_gets_more_than_its_overlap_with_an_interval(reqs, per_gpu, method) -> None:
    iv = {k: [] for k in ("gpu_idx", "t0", "t1", "measured_s", "measured_j", "utilization",
                          "window")}
    bounds = {}
    w = 0
    for gpu, cells in zip(GPUS, per_gpu, strict=True):
        t = -2.0
        for dt, joules, gap, util in cells:
            t += 0.5 if gap else 0.0  # a quarantined or missing interval between
            iv["gpu_idx"].append(gpu)
            iv["t0"].append(t)
            iv["t1"].append(t + dt)
            iv["measured_s"].append(dt)
            iv["measured_j"].append(joules)
            iv["utilization"].append(util)
            iv["window"].append(w)
            bounds[w] = (gpu, t, t + dt)
            w += 1
            t += dt
    intervals = pa.table({**iv, "gpu_idx": pa.array(iv["gpu_idx"], pa.uint64())})
    requests = pa.table({
        "req_idx": list(range(len(reqs))), "class_idx": [r["cls"] for r in reqs],
        "scheduled_s": [r["start"] for r in reqs],
        "first_token_s": [r["start"] + r["prefill"] for r in reqs],
        "finished_s": [r["start"] + r["prefill"] + r["decode"] for r in reqs],
        "prefill_tokens": [float(r["inp"]) for r in reqs],
        "decode_tokens": [float(r["out"]) for r in reqs]})
    pl = [(i, g) for i, r in enumerate(reqs) for g in r["gpus"]]
    placements = pa.table({"req_idx": pa.array([p[0] for p in pl], pa.int64()),
                           "gpu_idx": pa.array([p[1] for p in pl], pa.uint64())})
    result = attribute(intervals, requests, placements, method=method)
    seg = result.per_segment.group_by(["req_idx", "gpu_idx", "window"]).aggregate(
        [("gpu_seconds", "sum"), ("energy_j", "sum")]).to_pylist()
    for s in seg:
        gpu, a, b = bounds[s["window"]]
        assert s["gpu_idx"] == gpu and gpu in reqs[s["req_idx"]]["gpus"]
        assert s["gpu_seconds_sum"] <= _overlap(_presence(reqs[s["req_idx"]]), a, b) + 1e-9
        assert s["energy_j_sum"] >= 0
    # And per interval the buckets still add up to what was measured.
    for win in result.per_window.to_pylist():
        for u in "sj":
            total = sum(win[f"{b}_{u}"] for b in BUCKETS)
            assert abs(total - win[f"measured_{u}"]) <= 1e-9 * max(1.0, win[f"measured_{u}"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 50)),
                          min_size=1, max_size=6))
def test_a_response_is_one_row_whatever_its_choices(responses) -> None:
    """vLLM emits one llm_request span per choice; a response is still one row, its choices
    counted, its output every choice's tokens, its GPU time not multiplied."""
    f = Fleet()
    t0 = 1_800_000_100.0
    uids = {}
    for k, (n, out) in enumerate(responses):
        s = t0 + 2 * k
        uids[f.request(scheduled=s, first_token=s + 0.1, finished=s + 1, gpus=["G"],
                       input_tokens=10, output_tokens=out, choices=n)] = (n, out)
    f.sample("G", t0 - 1, energy_j=0.0)
    f.sample("G", t0 + 2 * len(responses) + 1, energy_j=1000.0)
    con = f.con()
    got = {r["request_uid"]: r for r in rows(con, "SELECT * FROM mart_request_costs")}
    assert set(got) == set(uids)
    for uid, (n, out) in uids.items():
        assert got[uid]["choices"] == n and got[uid]["output_tokens"] == n * out
        # alone on the GPU for its 1 s, whatever n: never n × 1 s
        assert got[uid]["gpu_seconds"] == pytest.approx(1.0)
