"""Benchmark: the full attribution (sharing, conservation, costs) at 1M requests × 10M samples.

Builds a synthetic store in memory — 8 GPUs sampled every 100 ms (10M intervals), requests
with lognormal durations placed on random GPUs (5% tensor-parallel over two) — and times the
analytics steps from the attribution inputs to the marts, at full size and at 1/10 size.
Prints times, rows/s and the large/small ratio; the last line is one JSON object.

    .venv/bin/python bench/attribution.py [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import duckdb

from analytics.compute import compute
from analytics.models import steps
from analytics.pricing import load_pricing
from analytics.settings import Settings
from inferledger.store.catalog import staging_sql
from inferledger.store.raw_schema import METRIC_POINTS, SPANS

GPUS = 8
T0 = 1_800_000_000.0
# The steps whose tables the bench fills itself (built empty first, for their schemas), and
# the timed rest, from what derives from them (each request's SLO verdict) to the marts.
INPUTS = ("intermediate/int_gpu_intervals", "intermediate/int_requests",
          "intermediate/int_request_slo", "intermediate/int_answers",
          "intermediate/int_request_gpus")
TIMED = ("intermediate/int_request_slo", *(s for s in steps() if s not in INPUTS))


def build(con: duckdb.DuckDBPyConnection, requests: int, samples: int) -> None:
    """Intermediate inputs with the real schemas (from the SQL on empty raw tables)."""
    con.register("raw_spans", SPANS.empty_table())
    con.register("raw_metric_points", METRIC_POINTS.empty_table())
    con.execute(staging_sql()).fetchall()
    compute(con, load_pricing(), Settings(), INPUTS)  # empty int_* with their schemas
    per_gpu = samples // GPUS
    span_s = per_gpu * 0.1
    con.execute(f"""
        INSERT INTO int_gpu_intervals BY NAME
        SELECT 'node-' || (g // 4) AS host_name, 'GPU-bench-' || g AS gpu_uuid,
               'NVIDIA H100 80GB HBM3' AS gpu_model, false AS simulated,
               {T0} + k * 0.1 AS t0, {T0} + (k + 1) * 0.1 AS t1, 0.1 AS measured_s,
               (120 + 480 * random()) * 0.1 AS measured_j, 'counter' AS energy_source,
               0.9 AS utilization, 400.0 AS power_w, 700.0 AS power_limit_w,
               date_trunc('hour', to_timestamp({T0} + k * 0.1)) AS hour
        FROM range({GPUS}) a(g), range({per_gpu}) b(k)""").fetchall()
    con.execute(f"""
        INSERT INTO int_requests BY NAME
        WITH base AS (
            SELECT i, {T0} + random() * ({span_s} - 60) AS s,
                   exp(ln(0.15) + 0.8 * (random() + random() + random() - 1.5)) AS pf,
                   exp(ln(4.0) + 0.6 * (random() + random() + random() - 1.5)) AS dc
            FROM range({requests}) r(i))
        SELECT 'req-' || i AS request_uid, 'trace-' || i AS trace_id, 'req-' || i AS request_id,
               'both' AS seen_by, 'tenant-' || (i % 20) AS tenant, 'app' AS route,
               'model-' || (i % 3) AS model,
               CASE WHEN i % 50 = 0 THEN 'client_abort' WHEN i % 97 = 0 THEN 'error'
                    ELSE 'ok' END AS outcome,
               CASE WHEN i % 50 = 0 THEN 'aborted' WHEN i % 97 = 0 THEN 'failed'
                    ELSE 'useful' END AS work_class,
               (200 + (i * 7919) % 3000)::BIGINT AS input_tokens,
               (20 + (i * 104729) % 500)::BIGINT AS output_tokens, 0::BIGINT AS cached_tokens,
               s AS started_s, s AS scheduled_s, s + pf AS first_token_s,
               s + pf + dc AS finished_s, pf AS ttft_s, pf + dc AS e2e_s, false AS simulated,
               true AS reached_engine
        FROM base""").fetchall()
    con.execute(f"""
        INSERT INTO int_request_gpus BY NAME
        SELECT 'req-' || i AS request_uid, 'GPU-bench-' || ((i * 31) % {GPUS}) AS gpu_uuid,
               'span_tag' AS placement_source FROM range({requests}) r(i)
        UNION ALL
        SELECT 'req-' || i, 'GPU-bench-' || xor((i * 31) % {GPUS}, 1), 'span_tag'
        FROM range({requests}) r(i) WHERE i % 20 = 0""").fetchall()


def run(requests: int, samples: int) -> tuple[float, float]:
    con = duckdb.connect()
    con.execute("SET threads = 2").fetchall()
    build(con, requests, samples)
    started = time.perf_counter()
    worst = compute(con, load_pricing(), Settings(), TIMED)
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = 1M requests, 10M samples")
    args = ap.parse_args()
    large_n, large_m = int(1_000_000 * args.scale), int(10_000_000 * args.scale)
    small_n, small_m = large_n // 10, large_m // 10
    small_s, small_err = run(small_n, small_m)
    print(f"small: {small_n:>9,} requests × {small_m:>10,} samples  {small_s:6.2f} s  "
          f"{small_n / small_s:>10,.0f} requests/s  {small_m / small_s:>12,.0f} samples/s")
    large_s, large_err = run(large_n, large_m)
    print(f"large: {large_n:>9,} requests × {large_m:>10,} samples  {large_s:6.2f} s  "
          f"{large_n / large_s:>10,.0f} requests/s  {large_m / large_s:>12,.0f} samples/s")
    ratio = large_s / small_s
    print(f"large / small time: {ratio:.2f} for 10× the data (linear = 10.0); "
          f"goal ≤ 10 s at full size: {'met' if large_s <= 10 and args.scale >= 1 else 'see'} "
          f"({large_s:.2f} s)")
    print(json.dumps({
        "large_s": round(large_s, 3), "small_s": round(small_s, 3),
        "large_over_small": round(ratio, 3), "requests": large_n, "samples": large_m,
        "conservation_max_rel_error": max(small_err, large_err),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }))


if __name__ == "__main__":
    main()
