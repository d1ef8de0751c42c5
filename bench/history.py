"""Benchmark: a week of history for a 16-GPU fleet, through OTLP into a real collector.

Starts ``inferledger collector`` (its own process, as in the demo), runs
``generate_history`` for scenario ``fleet-16`` over 7 days ending now, then the analytics
once over the result. Goal (issue 7): the history in ≤ 5 minutes on this machine. Prints the
rate and the ratio to that limit; the last line is one JSON object.

    .venv/bin/python bench/history.py [--days 7] [--scenario fleet-16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from _stack import collector

from analytics.pipeline import run as run_analytics
from inferledger.store import DataDir
from simulator.history.generate import generate_history, report_progress
from simulator.scenario import load_scenario

LIMIT_S = 300.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--scenario", default="fleet-16")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    scenario = load_scenario(args.scenario)
    root = Path(tempfile.mkdtemp(prefix="il-history-"))
    try:
        with collector(root) as endpoint:
            stats = generate_history(scenario, args.days, endpoint, progress=report_progress())
        print(stats.describe())
        print(f"history: {stats.wall_s:.0f} s for {args.days:g} days of {stats.gpus} GPUs = "
              f"{stats.wall_s / LIMIT_S:.2f}× the {LIMIT_S:.0f} s limit")
        started = time.monotonic()
        result = run_analytics(DataDir.at(root))
        analytics_s = time.monotonic() - started
        print(f"analytics over it: {result.requests:,} requests, {result.intervals:,} GPU "
              f"intervals in {analytics_s:.0f} s (conservation error "
              f"{result.conservation_max_rel_error:.1e})")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({
        "scenario": scenario.name, "days": args.days, "gpus": stats.gpus,
        "requests": stats.requests, "spans": stats.spans, "gpu_points": stats.points,
        "history_wall_s": round(stats.wall_s, 1), "limit_s": LIMIT_S,
        "ratio_to_limit": round(stats.wall_s / LIMIT_S, 3),
        "simulated_days_per_minute": round(stats.simulated_days_per_minute, 2),
        "spans_per_s": round(stats.spans / stats.wall_s),
        "analytics_s": round(analytics_s, 1),
        "conservation_max_rel_error": result.conservation_max_rel_error,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}"}))


if __name__ == "__main__":
    main()
