"""Overview: the headline figures of a period (and the one before it), its spend bucket by
bucket, and how cost and GPU time moved. Every figure is inferledger/results/kpis.py's."""

from __future__ import annotations

import duckdb
import pandas as pd

from inferledger.results.filters import Filters
from inferledger.results.kpis import bridge, headline, in_buckets, no_value
from inferledger.store import read_df as df
from inferledger.vocabulary import WASTED

__all__ = ["bridge", "bucket", "cost_trend", "gpu_trend", "headline"]


def bucket(f: Filters) -> str:
    """Trend granularity: hours up to a week (and its partial hour), days beyond."""
    span = f.span_s
    return "hour" if span is not None and span <= 8 * 86400 else "day"


def cost_trend(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """The responses' own cost (attributed) per model and time bucket."""
    w, p = f.where("hour", hourly=True)
    return df(con, f"""
        SELECT date_trunc('{bucket(f)}', hour) AS time,
               coalesce(model, '{no_value("model")}') AS model, sum(cost_usd) AS cost_usd
        FROM spend_hourly WHERE {w} AND allocation = 'attributed' GROUP BY ALL ORDER BY 1""", p)


def gpu_trend(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Useful, wasted and idle shares of the checked GPU time per time bucket."""
    w, p = f.where("hour", hourly=True)
    return df(con, f"""
        SELECT date_trunc('{bucket(f)}', hour) AS time,
               CASE WHEN bucket = 'useful' THEN 'useful' WHEN bucket = 'idle' THEN 'idle'
                    ELSE 'wasted' END AS share,
               sum(gpu_seconds) / 3600 AS gpu_hours
        FROM spend_hourly WHERE {w} AND ({in_buckets(("useful", "idle", *WASTED))})
        GROUP BY ALL ORDER BY 1""", p)
