"""Benchmark: every dashboard page on 30 days of a 16-GPU fleet, in headless Chromium, while
ingest and analytics run.

Builds the store the way a user would (scenario ``fleet-16``, ``generate_history`` through a
real collector, then the analytics). Then, with ``--live`` (the default), starts
``inferledger demo --scenario fleet-16`` on that store — collector, simulated engines and
load, node agents, the scheduler running the analytics every 10 s, and the dashboard — and
measures, in Debian's chromium driven by Playwright, the time from navigation to each page
fully rendered: Streamlit's script finished, the page's title shown, and on pages with
charts the first chart drawn. Each navigation opens a new tab (a new Streamlit session)
after the query cache expired (5 s), so every one queries the store again, in two browsers
taking turns: one whose cache holds Streamlit's scripts (a user who opened the dashboard
before: ``page_render_max_s``) and one with an empty cache, a first visit that downloads
and compiles them (``page_render_cold_max_s``). Goal: ≤ 2 s for every page.
Prints each and its ratio to the goal; the last line is one JSON object (the slowest page's
median of each). ``--store DIR`` keeps (and reuses) the store.

    .venv/bin/python bench/dashboard_load.py [--days 30] [--store DIR] [--runs 3] [--no-live]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _stack import collector, dashboard, free_port
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from analytics.pipeline import run as run_analytics
from inferledger.procs import terminate, wait_for_health
from inferledger.store import DataDir, connect_readonly
from simulator.history.generate import generate_history, report_progress
from simulator.scenario import load_scenario

GOAL_S = 2.0
TIMEOUT_MS = 60_000
CHROMIUM = "/usr/bin/chromium"
DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
CHART_MARKS = '[data-testid="stVegaLiteChart"] svg.marks g[class*="mark-"] path'
MODES = ("cached", "cold")  # the browser's cache: Streamlit's scripts in it, or empty
VIEWPORT = {"width": 1400, "height": 1600}
PAGES = {"": "Overview", "cost": "Cost", "gpu_efficiency": "GPU efficiency",
         "latency": "Latency", "explorer": "Request explorer", "settings": "Pricing & settings"}


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


@contextmanager
def live_demo(root: Path) -> Iterator[str]:
    """``inferledger demo --scenario fleet-16`` on ``root``: ingest, analytics every 10 s and
    its dashboard; yields the dashboard's URL once the first live analytics run is done."""
    dash, base = free_port(), 20_000 + os.getpid() % 20_000
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands", "demo", "--data", str(root), "--scenario",
         "fleet-16", "--grpc-port", str(free_port()), "--http-port", str(free_port()),
         "--dashboard-port", str(dash), "--engine-port-base", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{dash}"
    try:
        wait_for_health(f"{url}/_stcore/health", 300)
        time.sleep(30)  # load flowing, a few scheduled analytics runs done
        yield url
    finally:
        terminate(proc, 120)


def render_once(page, url: str, path: str, title: str) -> float:
    """Seconds to the page rendered; a page that does not render within the time-out counts
    as the time-out, with a screenshot and what the page says kept for a look."""
    started = time.monotonic()
    try:
        page.goto(f"{url}/{path}")
        page.get_by_role("heading", name=title, exact=True).wait_for(timeout=TIMEOUT_MS)
        page.wait_for_selector(DONE, timeout=TIMEOUT_MS)
        if path != "settings":  # every other page draws charts
            page.locator(CHART_MARKS).first.wait_for(timeout=TIMEOUT_MS)
    except PlaywrightTimeout:
        shot = Path(tempfile.gettempdir()) / f"dashboard_load-{path or 'overview'}.png"
        page.screenshot(path=str(shot), full_page=True)
        errors = page.locator('[data-testid="stException"]').all_inner_texts()
        print(f"{title}: not rendered in {TIMEOUT_MS / 1000:.0f} s (screenshot {shot}); "
              f"page errors: {errors or 'none'}", flush=True)
        return TIMEOUT_MS / 1000
    return time.monotonic() - started


def measure(url: str, runs: int) -> dict[str, dict[str, list[float]]]:
    """Each page ``runs`` times in each browser, the two browsers alternating which goes
    first, the pages in turn, so neither order nor warm-up decides."""
    times: dict[str, dict[str, list[float]]] = {m: {p: [] for p in PAGES} for m in MODES}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu"])
        cached = browser.new_context(viewport=VIEWPORT)
        warm = cached.new_page()  # fills the cache with the app's scripts, not measured
        render_once(warm, url, "settings", PAGES["settings"])
        warm.close()
        for i in range(runs):
            for j, (path, title) in enumerate(PAGES.items()):
                order = MODES if (i + j) % 2 == 0 else MODES[::-1]
                for mode in order:
                    # a new context has an empty cache; a tab of the cached one does not
                    page = cached.new_page() if mode == "cached" else browser.new_page(
                        viewport=VIEWPORT)
                    times[mode][path].append(render_once(page, url, path, title))
                    page.close()
                    took = times[mode][path][-1]
                    print(f"round {i + 1}: {title} ({mode} browser) rendered in {took:.2f} s "
                          f"({took / GOAL_S:.2f}× the {GOAL_S:.0f} s goal)", flush=True)
                    time.sleep(6)  # past the 5 s query cache: the next one queries the store
        browser.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--store", type=Path,
                    help="build the store here (default: a temporary folder); reuse it if it "
                    "already has results")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-live", dest="live", action="store_false",
                    help="the dashboard alone, nothing ingesting or analysing")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    root = args.store or Path(tempfile.mkdtemp(prefix="il-dashboard-"))
    built = {} if DataDir.at(root).analytics_state.exists() else build(root, args.days)
    con = connect_readonly(DataDir.at(root))
    [(requests, gpus, days)] = con.execute(
        "SELECT (SELECT sum(requests) FROM cost_hourly), (SELECT count(DISTINCT gpu_uuid) "
        "FROM gpu_time), (SELECT epoch(max(hour) - min(hour)) / 86400 FROM gpu_time)").fetchall()
    con.close()
    with (live_demo(root) if args.live else dashboard(root)) as url:
        times = measure(url, args.runs)
    medians = {m: {PAGES[p]: round(statistics.median(t), 3) for p, t in times[m].items()}
               for m in MODES}
    worst = {m: max(medians[m].values()) for m in MODES}
    for m in MODES:
        for title, med in medians[m].items():
            print(f"{m:<6} {title:<20} median {med:.2f} s = {med / GOAL_S:.2f}× the goal")
        print(f"{m:<6} slowest page: {worst[m]:.2f} s = {worst[m] / GOAL_S:.2f}× the "
              f"{GOAL_S:.0f} s goal ({'with' if args.live else 'without'} ingest and "
              "analytics running)")
    print(json.dumps({
        "store_days": round(days, 1), "gpus": gpus, "requests": int(requests), **built,
        "live": args.live, "page_render_s": medians["cached"],
        "page_render_max_s": worst["cached"], "page_render_cold_s": medians["cold"],
        "page_render_cold_max_s": worst["cold"], "goal_s": GOAL_S,
        "ratio_to_goal": round(worst["cached"] / GOAL_S, 3),
        "runs": {m: {PAGES[p]: [round(x, 3) for x in t] for p, t in times[m].items()}
                 for m in MODES},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}"}))


if __name__ == "__main__":
    main()
