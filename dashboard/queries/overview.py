"""Overview: headline figures for a period (and the one before it), and their trends."""

from __future__ import annotations

import duckdb
import pandas as pd

from analytics.filters import Filters
from analytics.kpis import WASTE, kpis
from inferledger.store import read_df as df

__all__ = ["bucket", "cost_trend", "gpu_trend", "kpis"]  # kpis: shared with the report

def bucket(f: Filters) -> str:
    """Trend granularity: hours up to a week, days beyond."""
    span = f.span_s
    return "hour" if span is not None and span <= 7 * 86400 else "day"


def cost_trend(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    w, p = f.where("hour", hourly=True)
    return df(con, f"""
        SELECT date_trunc('{bucket(f)}', hour) AS time, model, sum(cost_usd) AS cost_usd,
               sum(requests) AS requests
        FROM cost_hourly WHERE {w} GROUP BY ALL ORDER BY 1""", p)


def gpu_trend(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    w, p = f.gpu_where()
    return df(con, f"""
        SELECT date_trunc('{bucket(f)}', hour) AS time,
               sum(useful_s) / nullif(sum(measured_s), 0) AS useful,
               sum({WASTE}) / nullif(sum(measured_s), 0) AS wasted,
               sum(idle_s) / nullif(sum(measured_s), 0) AS idle
        FROM gpu_time WHERE {w} GROUP BY ALL ORDER BY 1""", p)
