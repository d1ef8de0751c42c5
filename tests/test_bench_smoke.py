"""The benchmarks still run on main: each at a tiny size, checking only what it reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_attribution_bench_runs_and_conserves() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "attribution.py"), "--scale",
                          "0.001"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["requests"] == 1000 and figures["samples"] == 10_000
    assert figures["conservation_max_rel_error"] <= 1e-9


def test_attribution_accuracy_bench_runs_against_the_oracle() -> None:
    """A few simulated minutes of one scenario, through a real collector and the pipeline:
    every served request is found in the store and compared with its simulated truth."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "attribution_accuracy.py"),
                          "--hours", "0.1", "--scenarios", "tensor_parallel", "--rates", "1Hz"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["method"] == "gpu_time" and figures["rate"] == "1Hz"
    run = figures["runs"]["tensor_parallel"]["1Hz"]
    assert set(run) == {"gpu_time", "work", "time_overlap", "kv_memory"}
    for r in run.values():
        assert r["missing"] == 0 and r["successful"] > 0
        assert 0 <= r["p50_rel_error"] <= r["p95_rel_error"] <= r["max_rel_error"]
        assert 0 <= r["misattributed_share"] <= 1


def test_live_analytics_bench_measures_runs_and_freshness() -> None:
    """The demo live for half a minute after ten minutes of history: scheduled runs timed
    from the scheduler's log, probe requests found in request_costs."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "live_analytics.py"),
                          "--history", "10m", "--minutes", "0.5"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr + out.stdout
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["live_runs"] >= 1 and figures["live_run_p95_s"] > 0
    assert figures["probes"] >= 1 and 0 < figures["freshness_p95_s"] < 120
