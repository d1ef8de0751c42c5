"""Every query the dashboard runs: parameterised SQL over the store's published views.

Overview figures come from ``request_costs`` and ``gpu_time``; nothing here writes, and the
connection takes no lock, so the dashboard can never block or break ingest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from analytics.attribution import BUCKETS
from inferledger.store import retry_vanished


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    models: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()

    def where(self, time_col: str = "started_at") -> tuple[str, list]:
        """A WHERE clause for request_costs and its parameters."""
        clauses, params = ["TRUE"], []
        if self.since is not None:
            clauses.append(f"{time_col} >= ?")
            params.append(self.since)
        if self.models:
            clauses.append("list_contains(?, model)")
            params.append(list(self.models))
        if self.tenants:
            clauses.append("list_contains(?, tenant)")
            params.append(list(self.tenants))
        return " AND ".join(clauses), params


def _df(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pd.DataFrame:
    cur = con.cursor()
    try:
        return retry_vanished(lambda: cur.execute(sql, params or []).df())
    finally:
        cur.close()


def is_simulated(con: duckdb.DuckDBPyConnection) -> bool:
    df = _df(con, "SELECT coalesce((SELECT bool_or(simulated) FROM stg_spans), false) OR "
                  "coalesce((SELECT bool_or(simulated) FROM stg_gpu_samples), false) AS s")
    return bool(df["s"].iloc[0])


def choices(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[str]]:
    models = _df(con, "SELECT DISTINCT model FROM request_costs WHERE model IS NOT NULL "
                      "ORDER BY 1")["model"].tolist()
    tenants = _df(con, "SELECT DISTINCT tenant FROM request_costs WHERE tenant IS NOT NULL "
                       "ORDER BY 1")["tenant"].tolist()
    return models, tenants


def kpis(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.Series:
    where, params = f.where()
    gwhere, gparams = ("hour >= date_trunc('hour', ?::TIMESTAMPTZ)", [f.since]) \
        if f.since else ("TRUE", [])
    sql = f"""
    WITH r AS (
        SELECT count(*) AS requests,
               count(*) FILTER (WHERE placed) AS placed,
               sum(cost_usd) AS attributed_usd,
               avg(cost_usd) AS cost_per_response_usd,
               sum(cost_usd) / nullif(sum(output_tokens) FILTER (WHERE cost_usd IS NOT NULL), 0)
                   * 1000 AS cost_per_1k_output_usd,
               avg(energy_j) AS energy_per_response_j,
               sum(carbon_g) AS carbon_g,
               quantile_cont(ttft_s, 0.5) AS ttft_p50_s,
               quantile_cont(ttft_s, 0.95) AS ttft_p95_s
        FROM request_costs WHERE {where}
    ), g AS (
        SELECT sum(cost_usd) AS gpu_spend_usd,
               sum(idle_cost_usd) AS idle_cost_usd,
               sum(useful_s) / nullif(sum(measured_s), 0) AS useful_fraction,
               sum(idle_s) / nullif(sum(measured_s), 0) AS idle_fraction,
               sum(failed_s + aborted_s + timed_out_s + preempted_s + model_loading_s
                   + unaccounted_s) / nullif(sum(measured_s), 0) AS other_waste_fraction,
               sum(measured_j) / 3.6e6 AS energy_kwh
        FROM gpu_time WHERE {gwhere}
    )
    SELECT * FROM r, g"""
    return _df(con, sql, params + gparams).iloc[0]


def by_dimension(con: duckdb.DuckDBPyConnection, f: Filters, dim: str) -> pd.DataFrame:
    if dim not in ("model", "tenant", "route", "host_name"):
        raise ValueError(f"cannot group by {dim!r}")
    where, params = f.where()
    return _df(con, f"""
        SELECT coalesce({dim}, '(unknown)') AS {dim},
               count(*) AS requests,
               round(sum(cost_usd), 6) AS cost_usd,
               round(avg(cost_usd), 8) AS cost_per_response_usd,
               round(sum(cost_usd) / nullif(sum(output_tokens), 0) * 1000, 6)
                   AS cost_per_1k_output_usd,
               round(avg(energy_j), 1) AS energy_per_response_j,
               round(quantile_cont(ttft_s, 0.5), 4) AS ttft_p50_s,
               round(quantile_cont(ttft_s, 0.95), 4) AS ttft_p95_s,
               count(*) FILTER (WHERE outcome <> 'ok') AS not_ok
        FROM request_costs WHERE {where}
        GROUP BY ALL ORDER BY cost_usd DESC NULLS LAST""", params)


def gpu_time_by_gpu(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    where, params = ("hour >= date_trunc('hour', ?::TIMESTAMPTZ)", [f.since]) \
        if f.since else ("TRUE", [])
    return _df(con, f"""
        SELECT host_name || ' / ' || gpu_model || ' / ' || left(gpu_uuid, 12) AS gpu,
               {", ".join(f"sum({b}_s) AS {b}_s" for b in BUCKETS)},
               round(sum(cost_usd), 6) AS cost_usd,
               round(sum(idle_cost_usd), 6) AS idle_cost_usd
        FROM gpu_time WHERE {where}
        GROUP BY ALL ORDER BY gpu""", params)


def cost_over_time(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    where, params = f.where()
    return _df(con, f"""
        SELECT time_bucket(INTERVAL '1 minute', started_at) AS minute, model,
               sum(cost_usd) AS cost_usd
        FROM request_costs WHERE {where} AND cost_usd IS NOT NULL
        GROUP BY ALL ORDER BY 1""", params)


def pricing_version(con: duckdb.DuckDBPyConnection) -> str | None:
    df = _df(con, "SELECT any_value(pricing_version) AS v, any_value(attribution_method) AS m "
                  "FROM request_costs")
    if not len(df) or df["v"].iloc[0] is None:
        return None
    return f"pricing {df['v'].iloc[0]}, attribution method '{df['m'].iloc[0]}'"
