"""What every page needs: the newest data, whether it is simulated, the filter choices."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from inferledger.store import read_df as df


def newest(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The newest hour with results, the anchor of every time range."""
    out = df(con, "SELECT max(hour) + INTERVAL 1 HOUR - INTERVAL 1 SECOND AS t FROM gpu_time")
    t = out["t"].iloc[0]
    return None if pd.isna(t) else t.to_pydatetime()


def is_simulated(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether any response or GPU in the results is simulated (from the rollups: cheap)."""
    out = df(con, "SELECT coalesce((SELECT bool_or(simulated) FROM cost_hourly), false) OR "
                  "coalesce((SELECT bool_or(simulated) FROM gpu_time), false) AS s")
    return bool(out["s"].iloc[0])


def choices(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Values for the model, tenant and node filters, from the hourly rollup."""
    out = {}
    for key, col in (("models", "model"), ("tenants", "tenant"), ("nodes", "host_name")):
        out[key] = df(con, f"SELECT DISTINCT {col} AS v FROM cost_hourly WHERE {col} IS NOT "
                           "NULL ORDER BY 1")["v"].tolist()
    return out
