"""What every page needs: the newest data, whether it is simulated, the filter choices."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from inferledger.store import read_df as df


def coverage(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    """The first and the newest sample with results: the newest anchors every time range,
    the first says whether a previous period is whole. Reads only the first and the last
    hour's intervals (Parquet statistics skip the rest)."""
    out = df(con, """
        WITH h AS (SELECT epoch(min(hour)) AS lo, epoch(max(hour)) AS hi FROM gpu_time)
        SELECT to_timestamp((SELECT min(t0) FROM gpu_intervals WHERE t0 < (SELECT lo FROM h)
                                                                        + 3600)) AS first,
               to_timestamp((SELECT max(t1) FROM gpu_intervals WHERE t0 >= (SELECT hi FROM h)))
                   AS newest""")
    return tuple(None if pd.isna(t) else t.to_pydatetime()  # type: ignore[return-value]
                 for t in (out["first"].iloc[0], out["newest"].iloc[0]))


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
