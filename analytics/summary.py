"""The headline figures of a data directory, from the published tables."""

from __future__ import annotations

from typing import Any

from inferledger.errors import UserError
from inferledger.store import DataDir, connect_readonly

SUMMARY_SQL = """
WITH r AS (
    SELECT
        sum(requests)                                        AS requests,
        sum(placed_requests)                                 AS placed,
        sum(cost_usd) / nullif(sum(placed_requests), 0)      AS cost_per_response_usd,
        sum(energy_j) / nullif(sum(placed_requests), 0)      AS energy_per_response_j,
        sum(cost_usd) / nullif(sum(placed_output_tokens), 0) * 1000
                                                             AS cost_per_1k_output_tokens_usd,
        sum(cost_usd)                                        AS attributed_cost_usd,
        sum(idle_share_usd)                                  AS idle_shared_usd,
        sum(api_cost_usd)                                    AS api_list_price_usd,
        bool_or(simulated)                                   AS simulated_requests
    FROM cost_hourly
),
q AS (
    SELECT quantile_cont(ttft_s, 0.5) AS ttft_p50_s, quantile_cont(ttft_s, 0.95) AS ttft_p95_s
    FROM request_costs
),
g AS (
    SELECT
        sum(measured_s)                                      AS gpu_seconds,
        sum(useful_s) / nullif(sum(measured_s), 0)           AS useful_gpu_fraction,
        sum(idle_s) / nullif(sum(measured_s), 0) AS idle_gpu_fraction,
        sum(cost_usd)                                        AS gpu_cost_usd,
        sum(idle_cost_usd)                      AS idle_cost_usd,
        sum(measured_j)                                      AS energy_j,
        bool_or(simulated)                                   AS simulated_gpus
    FROM gpu_time
),
c AS (
    SELECT coalesce(max(greatest(rel_error_s, rel_error_j)), 0) AS conservation_max_rel_error
    FROM conservation
),
l AS (  -- per-day rows, weighted by their requests
    SELECT sum(slo_attainment * requests) / nullif(sum(requests), 0) AS slo_attainment
    FROM latency WHERE dimension = 'all')
SELECT r.*, g.*, q.*, l.*, c.* FROM r, g, q, l, c
"""


class NoResults(UserError):
    """The analytics have not run on this data directory yet."""


def require_results(data: DataDir) -> None:
    """A store with published results, or a one-line error saying which of the two it lacks."""
    data.check_store()
    if not any(data.derived_table("cost_hourly").glob("*.parquet")):
        raise NoResults(f"no analytics results in {data.root} yet: run `inferledger analytics "
                        f"run --data {data.root}` (the scheduler does this on its interval)")


def summary(data: DataDir) -> dict[str, Any]:
    require_results(data)
    con = connect_readonly(data)
    try:
        cur = con.execute(SUMMARY_SQL)
        names = [d[0] for d in cur.description]
        row = dict(zip(names, cur.fetchall()[0], strict=True))
    finally:
        con.close()
    n = row.pop("requests") or 0
    placed = row.pop("placed") or 0
    out: dict[str, Any] = {"requests": n, "placed_fraction": placed / n if n else None}
    out |= {k: (float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
            for k, v in row.items()}
    out["simulated"] = bool(row.get("simulated_requests") or row.get("simulated_gpus"))
    del out["simulated_requests"], out["simulated_gpus"]
    return out


def format_table(s: dict[str, Any]) -> str:
    width = max(len(k) for k in s)
    lines = []
    for k, v in s.items():
        text = f"{v:.6g}" if isinstance(v, float) else "-" if v is None else str(v)
        lines.append(f"{k.ljust(width)}  {text}")
    return "\n".join(lines)
