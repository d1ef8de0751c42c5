"""Every headline figure, defined once: ``analytics summary``, every dashboard page, the weekly
report and the FOCUS export read them from here (or, for the export, from the same
``spend_hourly`` ledger), so the same question gets the same answer to the cent everywhere.

Money, energy and carbon come from ``spend_hourly``, whose rows add up to every GPU's
measured and checked time: spend = useful + wasted + idle, under any filter. A model or
tenant filter keeps the rows charged to the selection (its requests' own GPU time and the
idle spread over them by the pricing file's idle policy); what no one is charged for (idle
under the 'separate' policy, model loading, unaccounted work) stays outside and is reported
beside it (``not_charged_usd``). Response counts and tokens come from ``cost_hourly`` (by the
hour a response started), latency from ``request_costs``.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from inferledger.results.filters import Filters
from inferledger.store import read_df
from inferledger.vocabulary import BRIDGE, UNMEASURED, WASTED

NOT_CHARGED = "(idle and overhead: not charged)"
# One colour per bucket on every page and in the report ("wasted": the buckets together).
COLOURS = {"useful": "#2e7d32", "wasted": "#e65100", "failed": "#c62828",
           "aborted": "#ef6c00", "timed_out": "#f9a825", "preempted": "#8e24aa",
           "model_loading": "#1e88e5", "unaccounted": "#6d4c41", "idle": "#9e9e9e",
           "unmeasured": "#37474f"}
DIMENSIONS = {"model": "model", "tenant": "tenant", "route": "route", "node": "host_name"}


def no_value(dim: str) -> str:
    """The one label for a response without a model (tenant, route): '(no model)'."""
    return f"(no {dim})"


def in_buckets(buckets: tuple[str, ...]) -> str:
    return "bucket IN (" + ", ".join(f"'{b}'" for b in buckets) + ")"


def headline(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.Series:
    """The figures of one slice: spend and its parts, GPU-time shares, energy and carbon
    (spend_hourly); responses, cost per response and per 1k output tokens (attributed cost ÷
    placed responses; cost_hourly); TTFT p95 and SLO attainment (request_costs); answers
    (answer_costs): cost per answer (its requests' own cost, retries included, ÷ answers),
    cost per completed answer (the slice's whole GPU spend — idle, waste and failed answers
    included — ÷ the answers that completed), retry and context cost."""
    w, p = f.where("hour", hourly=True)
    scope, sp = f.gpu_where()
    rw, rp = f.where()
    sql = f"""
    WITH s AS (
        SELECT sum(cost_usd) AS gpu_spend_usd,
               coalesce(sum(cost_usd) FILTER (WHERE allocation = 'attributed'), 0)
                   AS attributed_usd,
               coalesce(sum(cost_usd) FILTER (WHERE bucket = 'useful'), 0) AS useful_usd,
               coalesce(sum(cost_usd) FILTER (WHERE {in_buckets(WASTED)}), 0) AS wasted_usd,
               coalesce(sum(cost_usd) FILTER (WHERE bucket = 'idle'), 0) AS idle_cost_usd,
               coalesce(sum(cost_usd) FILTER (WHERE allocation = 'idle_policy'), 0)
                   AS idle_share_usd,
               coalesce(sum(cost_usd) FILTER (WHERE allocation = 'unallocated'
                                              AND bucket <> 'idle'), 0) AS overhead_usd,
               sum(gpu_seconds) FILTER (WHERE bucket <> '{UNMEASURED}') AS gpu_seconds,
               coalesce(sum(gpu_seconds) FILTER (WHERE bucket = '{UNMEASURED}'), 0) / 3600
                   AS unmeasured_gpu_hours,
               sum(energy_j) / 3.6e6 AS energy_kwh,
               sum(energy_j) FILTER (WHERE allocation = 'attributed') AS attributed_j,
               sum(carbon_g) / 1000 AS carbon_kg,
               sum(gpu_seconds) FILTER (WHERE bucket = 'useful') AS useful_s,
               sum(gpu_seconds) FILTER (WHERE {in_buckets(WASTED)}) AS wasted_s,
               sum(gpu_seconds) FILTER (WHERE bucket = 'idle') AS idle_s,
               any_value(idle_policy) AS idle_policy
        FROM spend_hourly WHERE {w}
    ), u AS (
        SELECT coalesce(sum(cost_usd) FILTER (WHERE allocation = 'unallocated'), 0)
                   AS not_charged_usd,
               sum(cost_usd) AS fleet_spend_usd
        FROM spend_hourly WHERE {scope}
    ), c AS (
        SELECT coalesce(sum(requests), 0)::BIGINT AS requests,
               sum(placed_requests) AS placed_requests,
               sum(placed_output_tokens) AS placed_output_tokens,
               sum(api_cost_usd) AS api_cost_usd
        FROM cost_hourly WHERE {w}
    ), r AS (
        SELECT quantile_cont(ttft_s, 0.5) AS ttft_p50_s, quantile_cont(ttft_s, 0.95) AS ttft_p95_s,
               avg(slo_met::INT) AS slo_attainment
        FROM request_costs WHERE {rw}
    ), a AS (
        SELECT count(*) AS answers, count_if(outcome = 'completed') AS completed_answers,
               sum(requests) AS answer_requests, sum(cost_usd) AS answers_cost_usd,
               sum(retry_cost_usd) AS retry_cost_usd, sum(context_cost_usd) AS context_cost_usd,
               sum(kv_gb_s) AS kv_gb_s
        FROM answer_costs WHERE {rw}
    )
    SELECT c.requests, c.placed_requests / nullif(c.requests, 0) AS placed_fraction,
           s.gpu_spend_usd, s.attributed_usd, s.useful_usd, s.wasted_usd, s.idle_cost_usd,
           s.idle_share_usd, s.overhead_usd, u.not_charged_usd, u.fleet_spend_usd,
           s.attributed_usd / nullif(c.placed_requests, 0) AS cost_per_response_usd,
           s.attributed_usd / nullif(c.placed_output_tokens, 0) * 1000 AS cost_per_1k_output_usd,
           s.attributed_j / nullif(c.placed_requests, 0) AS energy_per_response_j,
           s.useful_s / nullif(s.gpu_seconds, 0) AS useful_fraction,
           s.wasted_s / nullif(s.gpu_seconds, 0) AS wasted_fraction,
           s.idle_s / nullif(s.gpu_seconds, 0) AS idle_fraction,
           s.gpu_seconds / 3600 AS gpu_hours, s.unmeasured_gpu_hours,
           s.energy_kwh, s.carbon_kg, c.api_cost_usd,
           r.ttft_p50_s, r.ttft_p95_s, r.slo_attainment, s.idle_policy,
           a.answers, a.completed_answers,
           a.answer_requests / nullif(a.answers, 0) AS requests_per_answer,
           a.answers_cost_usd / nullif(a.answers, 0) AS cost_per_answer_usd,
           s.gpu_spend_usd / nullif(a.completed_answers, 0) AS cost_per_completed_answer_usd,
           a.retry_cost_usd, a.context_cost_usd, a.kv_gb_s
    FROM s, u, c, r, a"""
    out = read_df(con, sql, p + sp + p + rp + rp).iloc[0]
    if pd.isna(out["gpu_spend_usd"]):  # no GPU time in the slice: its parts are unknown, not 0
        for k in ("attributed_usd", "useful_usd", "wasted_usd", "idle_cost_usd",
                  "idle_share_usd", "overhead_usd", "unmeasured_gpu_hours"):
            out[k] = None
    return out


def bridge(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Spend bucket by bucket (``BRIDGE`` order, then unmeasured hours at $0): ``bucket``,
    ``usd``, ``gpu_hours``, ``kwh``. Its ``usd`` adds up to ``headline().gpu_spend_usd``."""
    w, p = f.where("hour", hourly=True)
    got = read_df(con, f"""
        SELECT bucket, coalesce(sum(cost_usd), 0) AS usd, sum(gpu_seconds) / 3600 AS gpu_hours,
               coalesce(sum(energy_j), 0) / 3.6e6 AS kwh
        FROM spend_hourly WHERE {w} GROUP BY bucket""", p).set_index("bucket")
    order = [*BRIDGE, UNMEASURED]
    out = got.reindex(order).fillna(0.0).reset_index()
    return out[(out["gpu_hours"] > 0) | out["bucket"].isin(BRIDGE)]


def by_dimension(con: duckdb.DuckDBPyConnection, f: Filters, dim: str) -> pd.DataFrame:
    """One row per model (tenant, route, node) and, except per node, one for what no one is
    charged for: the rows add up to the slice's spend. ``cost_usd`` is the responses' own
    GPU time, ``idle_share_usd`` the idle spread over them under the idle policy,
    ``total_usd`` both (and, per node, the node's uncharged idle and overhead)."""
    col = DIMENSIONS[dim]  # a whitelisted column name, never user text
    name = f"coalesce({col}, '{no_value(dim)}')"
    charged = name if dim == "node" else \
        f"CASE WHEN allocation = 'unallocated' THEN '{NOT_CHARGED}' ELSE {name} END"
    w, p = f.where("hour", hourly=True)
    return read_df(con, f"""
        WITH m AS (
            SELECT {charged} AS name,
                   sum(cost_usd) FILTER (WHERE allocation = 'attributed') AS cost_usd,
                   sum(cost_usd) FILTER (WHERE allocation = 'attributed' AND bucket <> 'useful')
                       AS wasted_usd,
                   sum(cost_usd) FILTER (WHERE allocation = 'idle_policy') AS idle_share_usd,
                   sum(cost_usd) AS total_usd,
                   sum(energy_j) FILTER (WHERE allocation = 'attributed') AS attributed_j,
                   sum(energy_j) / 3.6e6 AS energy_kwh, sum(carbon_g) / 1000 AS carbon_kg
            FROM spend_hourly WHERE {w} GROUP BY 1
        ), n AS (
            SELECT {name} AS name, sum(requests) AS requests,
                   sum(placed_requests) AS placed, sum(placed_output_tokens) AS placed_out,
                   sum(output_tokens) AS output_tokens, sum(api_cost_usd) AS api_cost_usd
            FROM cost_hourly WHERE {w} GROUP BY 1
        )
        SELECT name AS {dim}, coalesce(n.requests, 0) AS requests, n.output_tokens,
               coalesce(m.cost_usd, 0) AS cost_usd, coalesce(m.wasted_usd, 0) AS wasted_usd,
               coalesce(m.idle_share_usd, 0) AS idle_share_usd,
               coalesce(m.total_usd, 0) AS total_usd,
               m.cost_usd / nullif(n.placed, 0) AS usd_per_response,
               m.cost_usd / nullif(n.placed_out, 0) * 1000 AS usd_per_1k_output_tokens,
               m.attributed_j / nullif(n.placed, 0) AS joules_per_response,
               m.energy_kwh, m.carbon_kg, n.api_cost_usd
        FROM m FULL JOIN n USING (name)
        ORDER BY name = '{NOT_CHARGED}', total_usd DESC NULLS LAST, {dim}""", p + p)


def answers_by(con: duckdb.DuckDBPyConnection, f: Filters, dim: str) -> pd.DataFrame:
    """Answers per app (route; or model, tenant, node): how many, how many completed, their
    requests each, what one cost (its requests' own cost, retries included), the part spent
    on retries and on added context, KV memory held, and how long the user waited."""
    col = DIMENSIONS[dim]  # a whitelisted column name, never user text
    w, p = f.where()
    return read_df(con, f"""
        SELECT coalesce({col}, '{no_value(dim)}') AS {dim}, count(*) AS answers,
               count_if(outcome = 'completed') AS completed_answers,
               avg(requests) AS requests_per_answer,
               sum(cost_usd) / count(*) AS usd_per_answer,
               sum(retry_cost_usd) AS retry_cost_usd,
               sum(context_cost_usd) AS context_cost_usd,
               sum(context_cost_usd) / nullif(sum(cost_usd), 0) AS context_share,
               avg(kv_gb_s) AS kv_gb_s_per_answer,
               quantile_cont(e2e_s, 0.95) AS answer_e2e_p95_s,
               avg(other_spans_s) AS tool_time_per_answer_s
        FROM answer_costs WHERE {w}
        GROUP BY 1 ORDER BY sum(cost_usd) DESC NULLS LAST, 1""", p)
