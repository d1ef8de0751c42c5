"""Benchmark: the Overview page on 30 days of a 16-GPU fleet, in headless Chromium.

Builds the store the way a user would (scenario ``fleet-16``, ``generate_history`` through a
real collector, then the analytics), starts ``inferledger dashboard`` and measures, in
Debian's chromium driven by Playwright, the time from navigation to the Overview fully
rendered: Streamlit's script finished, the headline figures shown and both charts drawn.
The first navigation runs every query cold; later ones come after the query cache expired
(5 s), so they query the store again too. Goal (issue 8): ≤ 2 s. Prints each and the ratio
to the goal; the last line is one JSON object. ``--store DIR`` keeps (and reuses) the store.

    .venv/bin/python bench/dashboard_load.py [--days 30] [--store DIR] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from _stack import collector, dashboard
from playwright.sync_api import sync_playwright

from analytics.pipeline import run as run_analytics
from inferledger.store import DataDir, connect_readonly
from simulator.history.generate import generate_history, report_progress
from simulator.scenario import load_scenario

GOAL_S = 2.0
CHROMIUM = "/usr/bin/chromium"
RENDERED = ('[data-testid="stApp"][data-test-script-state="notRunning"] '
            '[data-testid="stMetricValue"]')
CHART_MARKS = '[data-testid="stVegaLiteChart"] svg.marks g.mark-area path'


def build(root: Path, days: float) -> dict:
    with collector(root) as endpoint:
        stats = generate_history(load_scenario("fleet-16"), days, endpoint,
                                 progress=report_progress())
    print(stats.describe(), flush=True)
    started = time.monotonic()
    result = run_analytics(DataDir.at(root))
    print(f"analytics: {result.requests:,} requests in {time.monotonic() - started:.0f} s",
          flush=True)
    return {"history_s": round(stats.wall_s),
            "analytics_s": round(time.monotonic() - started)}


def render_once(page, url: str) -> float:
    started = time.monotonic()
    page.goto(url)
    page.wait_for_selector(RENDERED, timeout=120_000)
    page.locator(CHART_MARKS).nth(1).wait_for(timeout=120_000)  # both charts drawn
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--store", type=Path,
                    help="build the store here (default: a temporary folder); reuse it if it "
                    "already has results")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    root = args.store or Path(tempfile.mkdtemp(prefix="il-dashboard-"))
    built = {} if DataDir.at(root).analytics_state.exists() else build(root, args.days)
    times = []
    with dashboard(root) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu"])
        for i in range(args.runs):
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            times.append(render_once(page, url))
            page.close()
            print(f"navigation {i + 1}: Overview rendered in {times[-1]:.2f} s "
                  f"({times[-1] / GOAL_S:.2f}× the {GOAL_S:.0f} s goal)", flush=True)
            time.sleep(6)  # past the 5 s query cache: the next one queries the store again
        browser.close()
    typical = statistics.median(times[1:]) if len(times) > 1 else times[0]
    con = connect_readonly(DataDir.at(root))
    [(requests, gpus, days)] = con.execute(
        "SELECT (SELECT sum(requests) FROM cost_hourly), (SELECT count(DISTINCT gpu_uuid) "
        "FROM gpu_time), (SELECT epoch(max(hour) - min(hour)) / 86400 FROM gpu_time)").fetchall()
    con.close()
    print(f"first (cold) {times[0]:.2f} s, median of later navigations {typical:.2f} s = "
          f"{typical / GOAL_S:.2f}× the goal")
    print(json.dumps({
        "store_days": round(days, 1), "gpus": gpus, "requests": int(requests), **built,
        "overview_render_s": round(typical, 3), "overview_first_render_s": round(times[0], 3),
        "goal_s": GOAL_S, "ratio_to_goal": round(typical / GOAL_S, 3),
        "runs": [round(t, 3) for t in times],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}"}))


if __name__ == "__main__":
    main()
