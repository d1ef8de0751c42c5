"""Request explorer: find requests, then one request's spans, GPUs, power and cost.

Every drill-down is bounded in time around the request as well as keyed by its id: the
store's files and row groups carry time statistics but ids are random, so a lookup by id
alone reads every day of every table, a bounded one the day or two it lies in.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from inferledger.results.filters import Filters
from inferledger.store import read_df as df

LIST_COLUMNS = ("request_uid, trace_id, request_id, answer_id, started_at, model, tenant, route, "
                "outcome, e2e_s, ttft_s, output_tokens, cost_usd")
# A trace's other spans (an app's root, retrieval, tool calls) lie within the analytics'
# window margin of its request: an hour.
NEAR_S = 3600.0
# An answer is computed in the day it started, so its requests lie within a day of it.
ANSWER_NEAR_S = 86400.0


def find(con: duckdb.DuckDBPyConnection, f: Filters, text: str, limit: int = 50
         ) -> pd.DataFrame:
    """Requests whose trace id, request id, answer id or tenant is ``text`` (a prefix of an
    id will do), within the filters."""
    w, p = f.where()
    return df(con, f"""
        SELECT {LIST_COLUMNS} FROM request_costs
        WHERE {w} AND (starts_with(trace_id, ?) OR starts_with(request_id, ?)
                       OR starts_with(answer_id, ?) OR starts_with(answer_id, 'trace:' || ?)
                       OR tenant = ?)
        ORDER BY started_at DESC LIMIT ?""", [*p, text, text, text, text, text, limit])


def top(con: duckdb.DuckDBPyConnection, f: Filters, by: str, limit: int = 50) -> pd.DataFrame:
    order = {"slowest": "e2e_s", "most expensive": "cost_usd"}[by]
    w, p = f.where()
    return df(con, f"""
        SELECT {LIST_COLUMNS} FROM request_costs WHERE {w}
        ORDER BY {order} DESC NULLS LAST LIMIT ?""", [*p, limit])


def request(con: duckdb.DuckDBPyConnection, request_uid: str, started_s: float
            ) -> pd.Series | None:
    """The request that started at ``started_s`` (as listed), with its phases."""
    lo, hi = _around(started_s, started_s, 1.0)
    out = df(con, """
        SELECT c.*, r.started_s, r.scheduled_s, r.first_token_s, r.finished_s
        FROM request_costs c JOIN requests r USING (request_uid)
        WHERE c.request_uid = ? AND c.started_at BETWEEN to_timestamp(?) AND to_timestamp(?)
          AND r.started_s BETWEEN ? AND ?""", [request_uid, lo, hi, lo, hi])
    return None if out.empty else out.iloc[0]


def spans(con: duckdb.DuckDBPyConnection, trace_ids: list[str], start_s: float,
          end_s: float) -> pd.DataFrame:
    """Every span of the traces of requests run between ``start_s`` and ``end_s``, for a
    timeline."""
    return df(con, """
        SELECT trace_id, span_id, parent_span_id, name, service_name,
               to_timestamp(start_s) AS start, to_timestamp(end_s) AS end, duration_s
        FROM stg_spans WHERE list_contains(?, trace_id) AND start_s BETWEEN ? AND ?
        ORDER BY start_s""", [trace_ids, *_around(start_s, end_s, NEAR_S)])


def answer(con: duckdb.DuckDBPyConnection, answer_id: str, near_s: float) -> pd.Series | None:
    """The answer a request that started at ``near_s`` served (answer_costs)."""
    out = df(con, """
        SELECT * FROM answer_costs
        WHERE answer_id = ? AND started_at BETWEEN to_timestamp(?) AND to_timestamp(?)""",
              [answer_id, *_around(near_s, near_s, ANSWER_NEAR_S)])
    return None if out.empty else out.iloc[0]


def answer_requests(con: duckdb.DuckDBPyConnection, answer_id: str, started_s: float
                    ) -> pd.DataFrame:
    """The requests of the answer that started at ``started_s`` in order, each attempt
    marked, with what it cost."""
    lo, hi = _around(started_s, started_s, ANSWER_NEAR_S)
    return df(con, """
        SELECT c.request_uid, c.trace_id, c.started_at, c.model, c.route, c.outcome,
               c.answer_attempt, c.retried, c.input_tokens, c.context_tokens,
               c.output_tokens, c.e2e_s, c.cost_usd, c.context_cost_usd, c.kv_gb_s,
               r.started_s, r.finished_s
        FROM request_costs c JOIN requests r USING (request_uid)
        WHERE c.answer_id = ? AND c.started_at BETWEEN to_timestamp(?) AND to_timestamp(?)
          AND r.started_s BETWEEN ? AND ?
        ORDER BY r.started_s""", [answer_id, lo, hi, lo, hi])


def gpu_context(con: duckdb.DuckDBPyConnection, gpu_uuids: list[str], start_s: float,
                end_s: float, margin_s: float = 30.0) -> pd.DataFrame:
    """Power on the request's GPUs around it, and how many requests were running there at
    each sample: the batch it shared."""
    lo, hi = start_s - margin_s, end_s + margin_s
    return df(con, """
        WITH s AS (
            SELECT gpu_uuid, ts_s, power_w FROM stg_gpu_samples
            WHERE list_contains(?, gpu_uuid) AND ts_s BETWEEN ? AND ?
        ), running AS (
            -- the requests on those GPUs then: started at most the analytics' margin (an
            -- hour) before, since a request is attributed no further back than that; both
            -- tables read by time, so only that hour's files are scanned
            SELECT unnest(c.gpu_uuids) AS gpu_uuid, r.request_uid, r.scheduled_s, r.finished_s
            FROM requests r JOIN request_costs c USING (request_uid)
            WHERE r.started_s BETWEEN ? AND ? AND r.finished_s >= ?
              AND c.started_at BETWEEN to_timestamp(?) AND to_timestamp(?)
              AND list_has_any(c.gpu_uuids, ?)
        ), concurrent AS (
            SELECT s.gpu_uuid, s.ts_s, count(r.request_uid) AS running
            FROM s LEFT JOIN running r ON r.gpu_uuid = s.gpu_uuid
                 AND s.ts_s BETWEEN r.scheduled_s AND r.finished_s
            GROUP BY ALL
        )
        SELECT to_timestamp(s.ts_s) AS time, s.gpu_uuid, s.power_w, c.running
        FROM s JOIN concurrent c USING (gpu_uuid, ts_s) ORDER BY time""",
              [gpu_uuids, lo, hi, lo - NEAR_S, hi, lo, lo - NEAR_S, hi, gpu_uuids])


def cost_parts(con: duckdb.DuckDBPyConnection, request_uid: str, start_s: float,
               end_s: float) -> pd.DataFrame:
    """Its share of each GPU in each hour it ran (``start_s`` to ``end_s``), as the
    attribution computed it, and that share at the GPU's hourly price."""
    lo, hi = _around(start_s, end_s, NEAR_S)
    return df(con, """
        SELECT a.gpu_uuid, a.gpu_model, a.hour, a.work_class, a.gpu_seconds, a.energy_j,
               t.measured_s AS gpu_hour_measured_s, t.measured_j AS gpu_hour_measured_j,
               a.gpu_seconds / nullif(t.measured_s, 0) AS share_of_gpu_hour,
               t.usd_per_gpu_hour, a.gpu_seconds * t.usd_per_gpu_hour / 3600 AS gpu_cost_usd
        FROM attribution a
        LEFT JOIN gpu_time t ON t.gpu_uuid = a.gpu_uuid AND t.hour = a.hour
             AND t.hour BETWEEN to_timestamp(?) AND to_timestamp(?)
        WHERE a.request_uid = ? AND a.hour BETWEEN to_timestamp(?) AND to_timestamp(?)
        ORDER BY a.hour, a.gpu_uuid""", [lo, hi, request_uid, lo, hi])


def _around(start_s: float, end_s: float, margin_s: float) -> list[float]:
    return [start_s - margin_s, end_s + margin_s]
