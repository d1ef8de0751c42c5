"""Benchmark: the live pipeline keeping up with its own schedule.

Runs ``inferledger demo`` the way a user does (a scenario's simulated fleet, the middleware,
load, node agents, the scheduler running the analytics every 10 s, the dashboard), after
``--history`` of generated history, and measures while it is live:

- **run duration**: each scheduled analytics run, from the scheduler's own log line
  (``analytics: <windows>, … (X.XXs)``), against its goal (≤ 2 s at demo scale, ≤ 10 s for
  ``fleet-16``); and how many runs were skipped because the previous one was still going;
- **freshness**: every 5 s a probe request goes straight to the first engine (through its
  tracing middleware) with a trace id of our own; freshness is from the probe's response
  ending (when its span is handed to the exporter: an upper bound on "accepted") to its row
  being visible in ``request_costs`` through a read-only connection. Goal: p95 ≤ 30 s.

Prints each figure with its ratio to the goal; the last line is one JSON object with
``live_run_p95_s`` and ``freshness_p95_s``.

    .venv/bin/python bench/live_analytics.py [--scenario demo] [--history 7d] [--minutes 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _stack import free_port

from inferledger.procs import terminate, wait_for_health
from inferledger.store import DataDir, connect_readonly

GOALS = {"demo": 2.0, "fleet-16": 10.0}
FRESHNESS_GOAL_S = 30.0
RUN_LINE = re.compile(r".*analytics: (?P<windows>.*?), \d+ requests.*\((?P<s>[\d.]+)s\)")


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


class DemoLog:
    """The demo's stderr, read on a thread: scheduled run durations once it is live."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.live = threading.Event()
        self.runs: list[tuple[float, str, float]] = []  # seconds, windows, when (monotonic)
        self.skipped = 0
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            self.lines.append(line.rstrip())
            if "going live" in line:
                self.live.set()
            elif self.live.is_set() and (m := RUN_LINE.search(line)):
                self.runs.append((float(m["s"]), m["windows"], time.monotonic()))
            elif "maximum number of running instances" in line:
                self.skipped += 1


def probe(client: httpx.Client, url: str, model: str) -> tuple[str, float]:
    """One small chat request with our own trace id; returns it and when the reply ended."""
    trace = secrets.token_hex(16)
    r = client.post(f"{url}/v1/chat/completions", headers={
        "traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"}, json={
        "model": model, "max_tokens": 16,
        "messages": [{"role": "user", "content": "How fresh is this?"}]})
    r.raise_for_status()
    return trace, time.time()


def visible(data: DataDir, traces: list[str]) -> set[str]:
    con = connect_readonly(data)
    try:
        rows = con.execute("SELECT DISTINCT trace_id FROM request_costs WHERE "
                           "list_contains(?, trace_id)", [traces]).fetchall()
    except Exception:
        return set()
    finally:
        con.close()
    return {r[0] for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="demo", choices=sorted(GOALS))
    ap.add_argument("--history", default="7d")
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--store", type=Path, help="data directory (default: a temporary one)")
    args = ap.parse_args()
    root = args.store or Path(tempfile.mkdtemp(prefix="live-bench-")) / "data"
    ports = {k: free_port() for k in ("grpc", "http", "dashboard")}
    base = 20_000 + os.getpid() % 20_000
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands", "demo", "--data", str(root), "--scenario",
         args.scenario, "--history", args.history, "--grpc-port", str(ports["grpc"]),
         "--http-port", str(ports["http"]), "--dashboard-port", str(ports["dashboard"]),
         "--engine-port-base", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    demo = DemoLog(proc)
    started = time.monotonic()
    try:
        if not demo.live.wait(3600):
            sys.exit("the demo did not go live within an hour:\n" + "\n".join(demo.lines[-20:]))
        live_at = time.monotonic()
        print(f"history and first analytics: {live_at - started:.0f} s; live now", flush=True)
        data = DataDir.at(root)
        engine = f"http://127.0.0.1:{base + 1}"
        wait_for_health(f"{engine}/health", 180)  # live engines start after the history
        with httpx.Client(timeout=60) as client:
            model = client.get(f"{engine}/v1/models").json()["data"][0]["id"]
            pending: dict[str, float] = {}
            fresh: list[float] = []
            end = time.monotonic() + args.minutes * 60
            next_probe = 0.0
            while time.monotonic() < end or (pending and time.monotonic() < end + 120):
                if time.monotonic() >= next_probe and time.monotonic() < end:
                    trace, done = probe(client, engine, model)
                    pending[trace] = done
                    next_probe = time.monotonic() + 5
                for trace in visible(data, list(pending)):
                    fresh.append(time.time() - pending.pop(trace))
                time.sleep(1)
    finally:
        terminate(proc, 120)
    runs = [s for s, _, _ in demo.runs]
    if not runs or not fresh:
        sys.exit(f"no live runs ({len(runs)}) or no probe seen ({len(fresh)}):\n"
                 + "\n".join(demo.lines[-20:]))
    goal = GOALS[args.scenario]
    out = {
        "scenario": args.scenario, "history": args.history, "minutes": args.minutes,
        "live_runs": len(runs), "live_run_p50_s": round(statistics.median(runs), 2),
        "live_run_p95_s": round(_quantile(runs, 0.95), 2), "live_run_max_s": round(max(runs), 2),
        "live_run_goal_s": goal, "runs_skipped": demo.skipped,
        "probes": len(fresh), "probes_unseen": len(pending),
        "freshness_p50_s": round(statistics.median(fresh), 1),
        "freshness_p95_s": round(_quantile(fresh, 0.95), 1),
        "freshness_max_s": round(max(fresh), 1), "freshness_goal_s": FRESHNESS_GOAL_S,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    }
    # A live run reads the raw data of the hours it recomputes: it grows as the demo's live
    # data (a sample per GPU metric per second) fills them, so show it over time.
    by_part: dict[int, list[float]] = {}
    for secs, _, at in demo.runs:
        by_part.setdefault(int((at - live_at) // 600), []).append(secs)
    for part, xs in sorted(by_part.items()):
        print(f"  live minutes {part * 10}–{part * 10 + 10}: {len(xs)} runs, p50 "
              f"{statistics.median(xs):.2f} s, p95 {_quantile(xs, 0.95):.2f} s")
    if len(by_part) > 1:
        last = by_part[max(by_part)]
        out["live_run_p95_last_10min_s"] = round(_quantile(last, 0.95), 2)
    windows = sorted({w for _, w, _ in demo.runs})
    print(f"live analytics runs: {len(runs)}, p50 {out['live_run_p50_s']} s, p95 "
          f"{out['live_run_p95_s']} s (×{out['live_run_p95_s'] / goal:.2f} of the {goal:g} s "
          f"goal), max {out['live_run_max_s']} s; skipped (previous still running): "
          f"{demo.skipped}; windows recomputed: {', '.join(windows[-3:])}")
    print(f"freshness (reply ended → row in request_costs): {len(fresh)} probes, p50 "
          f"{out['freshness_p50_s']} s, p95 {out['freshness_p95_s']} s "
          f"(×{out['freshness_p95_s'] / FRESHNESS_GOAL_S:.2f} of the {FRESHNESS_GOAL_S:g} s "
          f"goal), {len(pending)} never seen")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
