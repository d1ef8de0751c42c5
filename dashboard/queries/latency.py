"""Latency: where a response's time went, percentiles over time, tails, SLOs and goodput."""

from __future__ import annotations

import duckdb
import pandas as pd

from dashboard.queries.overview import bucket
from inferledger.results.filters import Filters
from inferledger.results.kpis import no_value
from inferledger.store import read_df as df

PHASES = ("edge_overhead_s", "queue_s", "prefill_s", "decode_s", "other_spans_s")


def phases(con: duckdb.DuckDBPyConnection, f: Filters, dim: str) -> pd.DataFrame:
    col = {"model": "model", "tenant": "tenant", "route": "route"}[dim]
    w, p = f.where()
    return df(con, f"""
        UNPIVOT (SELECT coalesce({col}, '{no_value(dim)}') AS {dim},
                        {", ".join(f"avg({ph}) AS {ph.removesuffix('_s')}" for ph in PHASES)}
                 FROM request_costs WHERE {w} AND outcome = 'ok' GROUP BY ALL)
        ON {", ".join(ph.removesuffix("_s") for ph in PHASES)}
        INTO NAME phase VALUE mean_s""", p)


def percentiles_over_time(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    w, p = f.where()
    return df(con, f"""
        WITH q AS (
            SELECT date_trunc('{bucket(f)}', started_at) AS time,
                   quantile_cont(ttft_s, [0.5, 0.95, 0.99]) AS ttft,
                   quantile_cont(tpot_s, [0.5, 0.95, 0.99]) AS tpot,
                   quantile_cont(e2e_s, [0.5, 0.95, 0.99]) AS e2e
            FROM request_costs WHERE {w} AND outcome = 'ok' GROUP BY ALL
        )
        SELECT time, m.metric, m.p50, m.p95, m.p99
        FROM q, LATERAL (VALUES ('ttft', ttft[1], ttft[2], ttft[3]),
                                ('tpot', tpot[1], tpot[2], tpot[3]),
                                ('e2e', e2e[1], e2e[2], e2e[3])) m(metric, p50, p95, p99)
        ORDER BY time""", p)


def slo(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Attainment (share of requests that succeeded within every objective) and goodput
    (such requests per second of the period) by model."""
    w, p = f.where()
    return df(con, f"""
        SELECT coalesce(model, '{no_value("model")}') AS model, count(*) AS requests,
               avg(slo_met::INT) AS slo_attainment,
               count(*) FILTER (WHERE slo_met)
                   / nullif(epoch(max(started_at)) - epoch(min(started_at)), 0) AS goodput_rps,
               quantile_cont(ttft_s, 0.95) AS ttft_p95_s, quantile_cont(tpot_s, 0.95) AS tpot_p95_s,
               quantile_cont(e2e_s, 0.99) AS e2e_p99_s,
               count(*) FILTER (WHERE outcome = 'timeout') AS timed_out,
               count(*) FILTER (WHERE outcome = 'rejected') AS rejected
        FROM request_costs WHERE {w} GROUP BY ALL ORDER BY 1""", p)


def tail(con: duckdb.DuckDBPyConnection, f: Filters, limit: int = 25) -> pd.DataFrame:
    w, p = f.where()
    return df(con, f"""
        SELECT trace_id, started_at, model, tenant, route, outcome, e2e_s, ttft_s, queue_s,
               prefill_s, decode_s, edge_overhead_s, other_spans_s, output_tokens
        FROM request_costs WHERE {w} ORDER BY e2e_s DESC NULLS LAST LIMIT ?""", [*p, limit])
