"""The headline figures of a slice of the results, shared by the dashboard's Overview and the
weekly report so both say the same thing."""

from __future__ import annotations

import duckdb
import pandas as pd

from analytics.filters import Filters
from inferledger.store import read_df

WASTE = "failed_s + aborted_s + timed_out_s + preempted_s + model_loading_s + unaccounted_s"


def kpis(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.Series:
    """Spend and GPU-time shares from ``gpu_time`` (GPU level: node filter only); responses,
    tokens and costs from ``cost_hourly``; latency and SLOs from ``request_costs``."""
    hw, hp = f.where("hour", hourly=True, node="host_name")
    gw, gp = f.gpu_where()
    rw, rp = f.where()
    sql = f"""
    WITH c AS (
        SELECT sum(requests) AS requests, sum(cost_usd) AS attributed_usd,
               sum(cost_usd) / nullif(sum(placed_requests), 0) AS cost_per_response_usd,
               sum(cost_usd) / nullif(sum(placed_output_tokens), 0) * 1000
                   AS cost_per_1k_output_usd,
               sum(energy_j) / nullif(sum(placed_requests), 0) AS energy_per_response_j,
               sum(carbon_g) / 1000 AS carbon_kg, sum(api_cost_usd) AS api_cost_usd
        FROM cost_hourly WHERE {hw}
    ), g AS (
        SELECT sum(cost_usd) AS gpu_spend_usd, sum(idle_cost_usd) AS idle_cost_usd,
               sum(useful_s) / nullif(sum(measured_s), 0) AS useful_fraction,
               sum({WASTE}) / nullif(sum(measured_s), 0) AS wasted_fraction,
               sum(idle_s) / nullif(sum(measured_s), 0) AS idle_fraction,
               sum(measured_j) / 3.6e6 AS energy_kwh
        FROM gpu_time WHERE {gw}
    ), r AS (
        SELECT quantile_cont(ttft_s, 0.95) AS ttft_p95_s, avg(slo_met::INT) AS slo_attainment
        FROM request_costs WHERE {rw}
    )
    SELECT * FROM c, g, r"""
    return read_df(con, sql, hp + gp + rp).iloc[0]
