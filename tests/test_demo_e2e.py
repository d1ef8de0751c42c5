"""`inferledger demo` end to end: the whole stack as a user runs it (about a minute)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.ports import free_block

pytestmark = pytest.mark.e2e


def _demo_args(data: Path, *extra: str) -> list[str]:
    base = free_block(8)
    return [sys.executable, "-m", "commands", "demo", "--data", str(data),
            "--grpc-port", str(base), "--http-port", str(base + 1),
            "--dashboard-port", str(base + 2), "--engine-port-base", str(base + 3),
            "--analytics-interval", "5", *extra]


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


class _Reader(threading.Thread):
    """Collects one output stream of a child while it runs."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []
        self.start()

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def _no_traceback(log: str, *markers: str) -> None:
    trace = max(log.find(m) for m in ("Traceback", *markers))
    assert trace < 0, log[max(0, trace - 300):trace + 4000]  # the whole traceback


def _wait(proc: subprocess.Popen, err: _Reader, timeout_s: float) -> None:
    """Wait for the demo to exit; on a hang, kill it and fail with what it logged."""
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        err.join(5)
        pytest.fail(f"demo did not exit within {timeout_s:.0f}s; its log:\n" + "".join(err.lines))
    err.join(5)


def test_demo_for_a_duration(tmp_path) -> None:
    data = tmp_path / "data"
    args = _demo_args(data, "--duration", "30", "--no-dashboard")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = _Reader(proc.stderr)
    # While the demo writes, another process opens the store read-only and queries it.
    deadline = time.monotonic() + 60
    results = data / "derived" / "request_costs"
    while not any(results.glob("*.parquet")) or not err.saw("analytics:"):
        assert time.monotonic() < deadline and proc.poll() is None, "".join(err.lines)
        time.sleep(0.5)
    query = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
             "print(con.execute('SELECT count(*) FROM raw_spans').fetchall()[0][0])")
    spans = 0
    while spans == 0:  # spans arrive in batches; the demo is still writing meanwhile
        assert time.monotonic() < deadline and proc.poll() is None, "".join(err.lines)
        out = subprocess.run([sys.executable, "-c", query, str(data / "inferledger.duckdb")],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        spans = int(out.stdout)
    assert proc.poll() is None  # the read happened while the collector was writing
    # A second demo on the same ports and store refuses before it starts anything.
    second = subprocess.run(args, capture_output=True, text=True, timeout=60)
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1, second.stderr
    assert "is taken by pid" in lines[0] and "demo running" not in second.stderr
    assert proc.poll() is None
    out_reader = _Reader(proc.stdout)
    _wait(proc, err, 180)
    out_reader.join(5)
    stdout = "".join(out_reader.lines)
    log = "".join(err.lines)
    assert proc.returncode == 0, log
    _no_traceback(log)
    assert "requests" in stdout and "conservation_max_rel_error" in stdout

    summary = subprocess.run([sys.executable, "-m", "commands", "analytics", "summary",
                              "--json", "--data", str(data)], capture_output=True, text=True,
                             timeout=60)
    s = json.loads(summary.stdout)
    assert s["requests"] >= 20
    assert s["placed_fraction"] >= 0.99
    assert s["cost_per_response_usd"] > 0 and s["energy_per_response_j"] > 0
    assert s["conservation_max_rel_error"] <= 1e-9
    assert 0 < s["useful_fraction"] <= 1 and s["ttft_p95_s"] > 0
    assert s["gpu_spend_usd"] == pytest.approx(s["useful_usd"] + s["wasted_usd"]
                                               + s["idle_cost_usd"])
    assert s["simulated"] is True

    import duckdb

    con = duckdb.connect(str(data / "inferledger.duckdb"), read_only=True)
    # Nothing reached the first demo's store but its own agents: one host per GPU, and no
    # interval whose energy implies more power than the GPU's limit.
    one_host, worst = con.execute("""
        WITH s AS (SELECT gpu_uuid, host_name, ts_s, energy_j, power_limit_w,
                          lag(energy_j) OVER w AS e0, lag(ts_s) OVER w AS t0
                   FROM stg_gpu_samples WINDOW w AS (PARTITION BY gpu_uuid ORDER BY ts_s))
        SELECT (SELECT max(n) FROM (SELECT count(DISTINCT host_name) AS n FROM s
                                    GROUP BY gpu_uuid)),
               max((energy_j - e0) / (ts_s - t0) / power_limit_w)
        FROM s WHERE ts_s > t0""").fetchone()
    assert one_host == 1 and worst < 1.1, (one_host, worst)
    outcomes = dict(con.execute("SELECT outcome, count(*) FROM request_costs GROUP BY 1")
                    .fetchall())
    models = {r[0] for r in con.execute("SELECT DISTINCT model FROM request_costs").fetchall()}
    hosts = {r[0] for r in con.execute("SELECT DISTINCT host_name FROM gpu_time").fetchall()}
    both = con.execute("SELECT count(*) FROM request_costs WHERE seen_by = 'both'").fetchall()
    edges = dict(con.execute("SELECT edge_source, count(*) FROM stg_edge_spans GROUP BY 1")
                 .fetchall())
    n_requests = con.execute("SELECT count(*) FROM request_costs").fetchall()[0][0]
    scraped = con.execute("SELECT count(DISTINCT engine), bool_and(len(gpu_uuids) > 0) FROM "
                          "stg_engine_counters WHERE counter = 'vllm:generation_tokens_total'"
                          ).fetchall()[0]
    loading = dict(con.execute("SELECT gpu_uuid, sum(model_loading_s) FROM gpu_time GROUP BY 1")
                   .fetchall())
    loading_from = con.execute("SELECT DISTINCT start_source FROM stg_engine_startups"
                               ).fetchall()
    con.close()
    assert outcomes.get("ok", 0) >= 15
    assert {"llama-3.1-8b-instruct", "qwen2.5-32b-instruct"} <= models
    assert hosts == {"sim-node-a", "sim-node-b"}
    assert both[0][0] >= 15  # middleware span and vLLM span joined through traceparent
    # The load went through the gateway: a gateway span and a middleware span per request,
    # counted once.
    assert edges.get("gateway", 0) >= 15 and n_requests <= edges["middleware"] + 2
    # Each node's agent scraped its engines' /metrics, placed on their GPUs.
    assert scraped == (3, True)
    # The agent watched every engine load its model: each GPU has model-loading time.
    assert len(loading) == 4 and all(v > 0.5 for v in loading.values()), loading
    assert loading_from == [("vllm",)]  # each engine's own "Overall Loading", as vLLM's
    assert _processes_mentioning(str(data)) == []


def test_ctrl_c_stops_everything_quickly(tmp_path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(_demo_args(data), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    err = _Reader(proc.stderr)
    deadline = time.monotonic() + 120
    while not err.saw("Ctrl-C to stop"):
        assert time.monotonic() < deadline and proc.poll() is None, "".join(err.lines)
        time.sleep(0.2)
    assert err.saw("dashboard  http://")
    time.sleep(3)
    running = _processes_mentioning(str(data))
    assert len(running) >= 6, "".join(err.lines)  # collector, nodes, engines, scheduler, …
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _Reader(proc.stdout)
    _wait(proc, err, 60)
    elapsed = time.monotonic() - started
    log = "".join(err.lines)
    assert proc.returncode == 0, log
    _no_traceback(log, "KeyboardInterrupt")
    assert _processes_mentioning(str(data)) == []
    print(f"stopped in {elapsed:.1f}s")


def test_demo_with_history_then_live(tmp_path) -> None:
    """`--history`: hours of the scenario first, through OTLP, analysed, then the live demo
    on the same fleet; the live RAG app's retrieval spans join its requests."""
    data = tmp_path / "data"
    proc = subprocess.Popen(_demo_args(data, "--history", "3h", "--duration", "25",
                                       "--no-dashboard", "--rate", "4"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = _Reader(proc.stderr)
    stdout = proc.stdout.read()
    _wait(proc, err, 300)
    log = "".join(err.lines)
    assert proc.returncode == 0, log
    _no_traceback(log)
    assert "simulated day(s) of 4 GPUs" in log and "going live" in log, log

    import duckdb

    con = duckdb.connect(str(data / "inferledger.duckdb"), read_only=True)
    # Live requests came through the gateway; the history's went straight to the engines.
    live_traces = "SELECT trace_id FROM stg_edge_spans WHERE edge_source = 'gateway'"
    # The history is what started before the first live request (not before the test began:
    # the history ends when it is generated, seconds later); a live request whose gateway
    # span was cut off at shutdown is neither.
    first_live = f"SELECT min(started_at) FROM request_costs WHERE trace_id IN ({live_traces})"
    [(past, live)] = con.execute(
        f"SELECT count(*) FILTER (WHERE trace_id NOT IN ({live_traces}) AND "
        f"started_at < ({first_live})), count(*) FILTER (WHERE trace_id IN ({live_traces})) "
        "FROM request_costs").fetchall()
    [(rag_live, with_retrieval)] = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE other_spans_s > 0) FROM request_costs "
        f"WHERE route = 'contract-rag' AND outcome = 'ok' AND trace_id IN ({live_traces})"
    ).fetchall()
    con.close()
    # How many requests the history holds depends on the hour of day it covers (the scenario's
    # daily shape), so compare with what it says it sent: every one of them analysed.
    [sent] = re.findall(r"simulated day\(s\) of 4 GPUs: ([\d,]+) requests", log)
    sent = int(sent.replace(",", ""))
    print(f"history sent {sent} requests; analysed {past}; live {live}")
    assert sent > 0 and past == sent and live >= 10, (sent, past, live)
    assert rag_live == 0 or with_retrieval >= rag_live - 1  # spans still in flight at the end
    assert "requests" in stdout
