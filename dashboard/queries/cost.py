"""Cost: where the money went by model, tenant, route, node and GPU type (the one definition
in inferledger/results/kpis.py, so the rows add up to the Overview's spend), the spread of cost per
response, what the same tokens would cost at API list prices, the pricing in use."""

from __future__ import annotations

import duckdb
import pandas as pd

from inferledger.results.filters import Filters
from inferledger.results.kpis import (
    NOT_CHARGED,
    answers_by,
    bridge,
    by_dimension,
    headline,
    no_value,
)
from inferledger.store import read_df as df

__all__ = ["answers_by", "bridge", "by_dimension", "by_gpu_type", "distribution", "headline",
           "percentiles", "pricing_in_use", "versus_api"]
SHOWN = ["requests", "cost_usd", "wasted_usd", "idle_share_usd", "total_usd",
         "usd_per_response", "usd_per_1k_output_tokens", "energy_kwh", "carbon_kg"]


def by_gpu_type(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Spend per GPU model: all of it (GPU level), with its idle part and useful share."""
    w, p = f.gpu_where()
    return df(con, f"""
        SELECT gpu_model, count(DISTINCT gpu_uuid) AS gpus, sum(cost_usd) AS spend_usd,
               coalesce(sum(cost_usd) FILTER (WHERE bucket = 'idle'), 0) AS idle_cost_usd,
               sum(gpu_seconds) FILTER (WHERE bucket = 'useful')
                   / nullif(sum(gpu_seconds) FILTER (WHERE bucket <> 'unmeasured'), 0)
                   AS useful_fraction,
               sum(energy_j) / 3.6e6 AS energy_kwh
        FROM spend_hourly WHERE {w} GROUP BY ALL ORDER BY spend_usd DESC""", p)


def _cost_of_responses(f: Filters) -> tuple[str, list]:
    w, p = f.where()
    return f"{w} AND cost_usd IS NOT NULL", p


def distribution(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Cost per response in log-spaced bins (10 per decade), per model."""
    w, p = _cost_of_responses(f)
    return df(con, f"""
        SELECT coalesce(model, '{no_value("model")}') AS model,
               pow(10, floor(log10(cost_usd) * 10) / 10) AS usd_per_response,
               count(*) AS responses
        FROM request_costs WHERE {w} AND cost_usd > 0 GROUP BY ALL ORDER BY 1, 2""", p)


def percentiles(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    w, p = _cost_of_responses(f)
    return df(con, f"""
        SELECT coalesce(model, '{no_value("model")}') AS model, count(*) AS responses,
               quantile_cont(cost_usd, 0.5) AS p50_usd, quantile_cont(cost_usd, 0.9) AS p90_usd,
               quantile_cont(cost_usd, 0.99) AS p99_usd, max(cost_usd) AS max_usd,
               avg(cost_usd) AS mean_usd
        FROM request_costs WHERE {w} GROUP BY ALL ORDER BY 1""", p)


def versus_api(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Per model with an API list price: its own cost, with its idle share, and the ratio of
    that to the API price; then every response against the whole GPU spend (idle and
    overhead charged to no one included): what self-hosting cost, all in."""
    m = by_dimension(con, f, "model")
    priced = m[(m["model"] != NOT_CHARGED) & (m["api_cost_usd"] > 0)]
    out = pd.DataFrame({"model": priced["model"], "requests": priced["requests"],
                        "cost_usd": priced["cost_usd"], "total_usd": priced["total_usd"],
                        "api_cost_usd": priced["api_cost_usd"]})
    if not out.empty:
        out = pd.concat([out, pd.DataFrame({
            "model": ["All responses: whole GPU spend"], "requests": [m["requests"].sum()],
            "cost_usd": [m.loc[m["model"] != NOT_CHARGED, "cost_usd"].sum()],
            "total_usd": [m["total_usd"].sum()], "api_cost_usd": [m["api_cost_usd"].sum()]})],
            ignore_index=True)
    out["ratio_to_api"] = out["total_usd"] / out["api_cost_usd"]
    return out


def pricing_in_use(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    w, p = f.where("hour", hourly=True)
    return df(con, f"""
        SELECT pricing_version, attribution_method, sum(requests) AS requests
        FROM cost_hourly WHERE {w} GROUP BY ALL ORDER BY requests DESC""", p)
