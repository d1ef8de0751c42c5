"""GPU efficiency: where GPU time went, how busy the SMs really were, power against limits,
and the engines' own pressure gauges."""

from __future__ import annotations

import duckdb
import pandas as pd

from dashboard.queries.overview import bucket
from inferledger.results.filters import Filters
from inferledger.store import read_df as df
from inferledger.vocabulary import GPU_TIME_BUCKETS as BUCKETS

# A GPU as people tell them apart, the distinct part first (a chart legend cuts long labels):
# its node, the end of its UUID (UUIDs of one vendor share their start), its model.
GPU_LABEL = ("host_name || ' · …' || right(gpu_uuid, 6) || ' (' "
             "|| replace(coalesce(gpu_model, '?'), 'NVIDIA ', '') || ')'")


def buckets_by_gpu(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    w, p = f.gpu_where()
    return df(con, f"""
        SELECT {GPU_LABEL} AS gpu, {", ".join(f"sum({b}_s) AS {b}_s" for b in BUCKETS)},
               round(sum(cost_usd), 4) AS cost_usd, round(sum(idle_cost_usd), 4) AS idle_cost_usd
        FROM gpu_time WHERE {w} GROUP BY ALL ORDER BY gpu""", p)


def buckets_over_time(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    w, p = f.gpu_where()
    return df(con, f"""
        UNPIVOT (SELECT date_trunc('{bucket(f)}', hour) AS time,
                        {", ".join(f"sum({b}_s) / 3600 AS {b}" for b in BUCKETS)}
                 FROM gpu_time WHERE {w} GROUP BY ALL)
        ON {", ".join(BUCKETS)} INTO NAME bucket VALUE gpu_hours ORDER BY time""", p)


def unmeasured(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """GPU time quarantined by the input checks, per GPU, with the reasons: shown, not
    priced."""
    w, p = f.gpu_where()
    return df(con, f"""
        SELECT {GPU_LABEL} AS gpu, sum(unmeasured_s) AS unmeasured_s,
               sum(unmeasured_j) AS unmeasured_j,
               sum(unmeasured_intervals) AS intervals,
               string_agg(DISTINCT unmeasured_reasons, ', ') AS reasons
        FROM gpu_time WHERE {w} AND unmeasured_s > 0 GROUP BY ALL ORDER BY gpu""", p)


def activity(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Per GPU and time bucket: NVML utilization (a kernel ran) beside SM activity (how many
    SMs worked, Hopper and newer), power and its limit, from the hourly rollup."""
    w, p = f.gpu_where()
    return df(con, f"""
        SELECT date_trunc('{bucket(f)}', hour) AS time, host_name, {GPU_LABEL} AS gpu,
               sum(utilization * utilization_n) / nullif(sum(utilization_n), 0) AS utilization,
               sum(sm_active * sm_active_n) / nullif(sum(sm_active_n), 0) AS sm_active,
               sum(power_w * power_n) / nullif(sum(power_n), 0) AS power_w,
               max(peak_power_w) AS peak_power_w, max(power_limit_w) AS power_limit_w
        FROM gpu_activity WHERE {w} GROUP BY ALL ORDER BY time, gpu""", p)


def node_power(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Power against the sum of the node's limits, and the headroom left at the peak, from
    the hourly rollup of 10-second bins (mart_node_power says how the bins are built)."""
    w, p = f.gpu_where()
    return df(con, f"""
        SELECT host_name AS node, round(sum(mean_power_w * bins) / sum(bins)) AS mean_power_w,
               round(max(peak_power_w)) AS peak_power_w, round(max(limit_w)) AS power_limit_w,
               round(max(limit_w) - max(peak_power_w)) AS headroom_at_peak_w,
               round(max(peak_power_w) / nullif(max(limit_w), 0), 3) AS peak_share_of_limit
        FROM node_power WHERE {w} GROUP BY ALL ORDER BY node""", p)


def energy(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Checked energy per node and time bucket, from the ledger the Overview reads."""
    w, p = f.gpu_where()
    return df(con, f"""
        SELECT date_trunc('{bucket(f)}', hour) AS time, host_name AS node,
               sum(energy_j) / 3.6e6 AS energy_kwh
        FROM spend_hourly WHERE {w} GROUP BY ALL ORDER BY 1""", p)


def engine_pressure(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """KV-cache use, queue length and running requests per engine, and the prefix-cache hit
    rate from the counters' increase over each time bucket."""
    w, p = f.where("to_timestamp(ts_s)", tenant=None)
    g = df(con, f"""
        SELECT date_trunc('{bucket(f)}', to_timestamp(ts_s)) AS time, engine, model,
               avg(value) FILTER (WHERE gauge = 'vllm:kv_cache_usage_perc') AS kv_cache_usage,
               max(value) FILTER (WHERE gauge = 'vllm:kv_cache_usage_perc') AS kv_cache_peak,
               avg(value) FILTER (WHERE gauge = 'vllm:num_requests_waiting') AS waiting,
               avg(value) FILTER (WHERE gauge = 'vllm:num_requests_running') AS running
        FROM stg_engine_gauges WHERE {w} GROUP BY ALL""", p)
    c = df(con, f"""
        WITH d AS (
            SELECT date_trunc('{bucket(f)}', to_timestamp(ts_s)) AS time, engine, counter,
                   greatest(value - lag(value) OVER (PARTITION BY series ORDER BY ts_s), 0)
                       AS inc
            FROM stg_engine_counters
            WHERE {w} AND counter IN ('vllm:prefix_cache_queries_total',
                                      'vllm:prefix_cache_hits_total')
        )
        SELECT time, engine,
               sum(inc) FILTER (WHERE counter = 'vllm:prefix_cache_hits_total')
               / nullif(sum(inc) FILTER (WHERE counter = 'vllm:prefix_cache_queries_total'), 0)
                   AS prefix_cache_hit_rate
        FROM d GROUP BY ALL""", p)
    if g.empty:
        return g
    return g.merge(c, on=["time", "engine"], how="left").sort_values(["time", "engine"])
