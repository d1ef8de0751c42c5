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
