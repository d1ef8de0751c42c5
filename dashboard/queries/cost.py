"""Cost: where the money went, how cost per response is spread, and the API comparison."""

from __future__ import annotations

import duckdb
import pandas as pd

from analytics.filters import Filters
from inferledger.store import read_df as df

DIMENSIONS = {"model": "model", "tenant": "tenant", "route": "route", "node": "host_name"}


def by_dimension(con: duckdb.DuckDBPyConnection, f: Filters, dim: str) -> pd.DataFrame:
    col = DIMENSIONS[dim]  # a whitelisted column name, never user text
    w, p = f.where("hour", hourly=True)
    return df(con, f"""
        SELECT coalesce({col}, '(unknown)') AS {dim}, sum(requests) AS requests,
               round(sum(cost_usd), 6) AS cost_usd,
               round(sum(total_cost_usd), 6) AS cost_with_idle_usd,
               round(sum(cost_usd) / nullif(sum(placed_requests), 0), 8) AS usd_per_response,
               round(sum(cost_usd) / nullif(sum(placed_output_tokens), 0) * 1000, 6)
                   AS usd_per_1k_output_tokens,
               round(sum(wasted_cost_usd), 6) AS wasted_usd,
               round(sum(energy_j) / 3.6e6, 4) AS energy_kwh
        FROM cost_hourly WHERE {w}
        GROUP BY ALL ORDER BY cost_usd DESC NULLS LAST""", p)


def by_gpu_type(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    w, p = f.gpu_where()
    return df(con, f"""
        SELECT gpu_model, count(DISTINCT gpu_uuid) AS gpus,
               round(sum(cost_usd), 4) AS spend_usd,
               round(sum(idle_cost_usd), 4) AS idle_cost_usd,
               round(sum(useful_s) / nullif(sum(measured_s), 0), 4) AS useful_fraction,
               round(sum(measured_j) / 3.6e6, 3) AS energy_kwh
        FROM gpu_time WHERE {w} GROUP BY ALL ORDER BY spend_usd DESC""", p)


def distribution(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Cost per response in log-spaced bins (10 per decade), per model."""
    w, p = f.where()
    return df(con, f"""
        SELECT model, pow(10, floor(log10(cost_usd) * 10) / 10) AS usd_per_response,
               count(*) AS responses
        FROM request_costs WHERE {w} AND cost_usd > 0 GROUP BY ALL ORDER BY 1, 2""", p)


def percentiles(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    w, p = f.where()
    return df(con, f"""
        SELECT model, count(*) AS responses,
               quantile_cont(cost_usd, 0.5) AS p50_usd, quantile_cont(cost_usd, 0.9) AS p90_usd,
               quantile_cont(cost_usd, 0.99) AS p99_usd, max(cost_usd) AS max_usd,
               avg(cost_usd) AS mean_usd
        FROM request_costs WHERE {w} AND cost_usd IS NOT NULL GROUP BY ALL ORDER BY 1""", p)


def versus_api(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    w, p = f.where("hour", hourly=True)
    return df(con, f"""
        SELECT model, sum(requests) AS requests,
               round(sum(cost_usd), 4) AS self_hosted_usd,
               round(sum(total_cost_usd), 4) AS self_hosted_with_idle_usd,
               round(sum(api_cost_usd), 4) AS api_list_price_usd,
               round(sum(total_cost_usd) / nullif(sum(api_cost_usd), 0), 3) AS ratio_to_api
        FROM cost_hourly WHERE {w} GROUP BY ALL ORDER BY self_hosted_usd DESC""", p)


def pricing_in_use(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    w, p = f.where("hour", hourly=True)
    return df(con, f"""
        SELECT pricing_version, attribution_method, sum(requests) AS requests
        FROM cost_hourly WHERE {w} GROUP BY ALL ORDER BY requests DESC""", p)
