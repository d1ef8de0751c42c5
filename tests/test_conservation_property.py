"""Conservation, as a property: on any workload, every GPU-second and joule is accounted for.

Random overlaps, gaps between samples, missing samples, tensor-parallel groups, requests
outside any sampled window, counter resets, recomputation after preemption, engines
starting up, and implausible inputs (a second agent reporting the same GPU, power above the
limit, long gaps) that are quarantined: for every GPU and window,
Σ attributed + unattributed + unmeasured = measured, for seconds and joules.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.compute import CONSERVATION_TOLERANCE
from analytics.settings import Settings
from inferledger.vocabulary import GPU_TIME_BUCKETS, METHODS
from tests.builders import Fleet, rows

T0 = 1_800_000_000.0 - 40  # the hour changes mid-workload: two windows
GPUS = [f"GPU-bbbbbbbb-0000-0000-0000-00000000000{i}" for i in range(3)]

request = st.fixed_dictionaries({
    "start": st.floats(0, 50), "prefill": st.floats(0, 5), "decode": st.floats(0, 20),
    "gpus": st.lists(st.sampled_from(GPUS), min_size=0, max_size=3, unique=True),
    "inp": st.integers(0, 5000), "out": st.integers(0, 2000),
    "outcome": st.sampled_from(["ok", "ok", "error", "client_abort", "timeout"]),
})
overhead = st.fixed_dictionaries({  # an engine's start-up, or a recompute counter's scrapes
    "start": st.floats(0, 60), "length": st.floats(0, 20), "tokens": st.integers(-500, 5000),
    "gpus": st.lists(st.sampled_from(GPUS), min_size=1, max_size=2, unique=True),
})
samples = st.lists(  # time, energy delta, counter reset, sent by a second agent
    st.tuples(st.floats(0, 80), st.floats(0, 1000), st.booleans(),
              st.sampled_from([False] * 5 + [True])), min_size=0, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=st.lists(request, max_size=12), per_gpu=st.lists(samples, min_size=3, max_size=3),
       method=st.sampled_from(METHODS),
       startups=st.lists(overhead, max_size=2), recomputes=st.lists(overhead, max_size=3))
def test_attributed_plus_idle_equals_measured(reqs, per_gpu, method, startups,
                                              recomputes) -> None:
    f = Fleet()
    for r in reqs:
        s = T0 + r["start"]
        f.request(scheduled=s, first_token=s + r["prefill"],
                  finished=s + r["prefill"] + r["decode"] + 1e-3, gpus=r["gpus"],
                  input_tokens=r["inp"], output_tokens=r["out"], outcome=r["outcome"])
    for u in startups:
        f.startup(T0 + u["start"], T0 + u["start"] + u["length"], gpus=u["gpus"])
    for i, c in enumerate(recomputes):  # each its own engine; fewer preemptions: a restart
        for t, v in ((c["start"], 1000), (c["start"] + c["length"], 1000 + c["tokens"] // 100)):
            f.engine_scrape(T0 + t, preemptions=v, kv_usage=0.8, running=3,
                            kv_cache_size_tokens=2000, gpus=c["gpus"], pid=100 + i)
    for gpu, pts in zip(GPUS, per_gpu, strict=True):
        energy = 0.0
        for t, delta, reset, other in sorted(pts):
            energy = 0.0 if reset else energy + delta  # a reset restarts the counter
            f.sample(gpu, T0 + t, energy_j=energy, power_w=delta / 2, power_limit_w=700,
                     source="agent-b" if other else None)
    con = f.con(Settings(method=method, max_sample_gap_s=30))
    worst = rows(con, "SELECT coalesce(max(greatest(rel_error_s, rel_error_j)), 0) AS w "
                      "FROM mart_conservation")[0]["w"]
    assert worst <= CONSERVATION_TOLERANCE
    # The same invariant from the other side: per GPU, the buckets add up to what was measured.
    for g in rows(con, "SELECT * FROM mart_gpu_time"):
        for u in "sj":
            buckets = sum(g[f"{b}_{u}"] for b in GPU_TIME_BUCKETS)
            assert abs(buckets - g[f"measured_{u}"]) <= 1e-9 * max(1.0, g[f"measured_{u}"])
    # Quarantined intervals are unmeasured, whole: none of their time reaches a request.
    q = rows(con, "SELECT gpu_uuid, hour, sum(measured_s) AS s FROM int_gpu_intervals "
                  "WHERE quarantine_reason IS NOT NULL GROUP BY ALL")
    got = {(r["gpu_uuid"], r["hour"]): r["unmeasured_s"]
           for r in rows(con, "SELECT * FROM mart_gpu_time")}
    for r in q:
        assert abs(got[(r["gpu_uuid"], r["hour"])] - r["s"]) <= 1e-9 * max(1.0, r["s"])
    # Nothing is attributed to a request that was not placed on that GPU.
    stray = rows(con, "SELECT a.request_uid FROM int_attribution a ANTI JOIN int_request_gpus g "
                      "USING (request_uid, gpu_uuid)")
    assert stray == []
