"""What the weekly report says, read from the published results: the week's headline figures
against the week before, the top tenants and models and the biggest movers, waste by cause,
and the largest opportunities, in words."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from analytics.filters import Filters
from analytics.kpis import WASTE, kpis
from analytics.report.week import Week
from inferledger.store import read_df as _df

CAUSES = ("failed", "aborted", "timed_out", "preempted", "model_loading", "idle", "unaccounted")
NIGHT_HOURS = (0, 6)  # local hours [start, end) counted as night


@dataclass
class WeeklyFigures:
    week: Week
    previous: Week
    now: pd.Series
    before: pd.Series
    by_model: pd.DataFrame  # this week's and last week's cost per model
    by_tenant: pd.DataFrame
    waste: pd.DataFrame  # cause, gpu_hours, usd
    daily: pd.DataFrame  # day, model, cost_usd (for the chart)
    gpu_daily: pd.DataFrame  # day, useful, wasted, idle fractions
    opportunities: list[str] = field(default_factory=list)
    simulated: bool = False
    unmeasured: pd.DataFrame | None = None  # gpu, gpu_hours, reasons: quarantined, unpriced

    @property
    def empty(self) -> bool:
        """Nothing measured this week: no responses and no GPU time."""
        return all(pd.isna(v) or not v for v in (self.now.get("requests"),
                                                  self.now.get("gpu_spend_usd")))

    def movers(self, n: int = 3) -> pd.DataFrame:
        """Tenants and models whose cost changed most against last week, either way."""
        frames = [d.assign(kind=k).rename(columns={k: "name"})
                  for k, d in (("model", self.by_model), ("tenant", self.by_tenant))]
        both = pd.concat(frames, ignore_index=True)
        both["change_usd"] = both["cost_usd"] - both["previous_cost_usd"]
        return both.reindex(both["change_usd"].abs().sort_values(ascending=False).index).head(n)


def _by(con: duckdb.DuckDBPyConnection, dim: str, week: Week, previous: Week) -> pd.DataFrame:
    return _df(con, f"""
        SELECT coalesce({dim}, '(unknown)') AS {dim},
               sum(requests) FILTER (WHERE hour >= ?) AS requests,
               coalesce(sum(cost_usd) FILTER (WHERE hour >= ?), 0) AS cost_usd,
               coalesce(sum(total_cost_usd) FILTER (WHERE hour >= ?), 0) AS cost_with_idle_usd,
               sum(cost_usd) FILTER (WHERE hour >= ?)
                   / nullif(sum(placed_requests) FILTER (WHERE hour >= ?), 0) AS usd_per_response,
               sum(output_tokens) FILTER (WHERE hour >= ?) AS output_tokens,
               coalesce(sum(cost_usd) FILTER (WHERE hour < ?), 0) AS previous_cost_usd
        FROM cost_hourly WHERE hour >= ? AND hour < ?
        GROUP BY ALL ORDER BY cost_usd DESC""",
               [week.start] * 6 + [week.start, previous.start, week.end])


def _waste(con: duckdb.DuckDBPyConnection, week: Week) -> pd.DataFrame:
    cols = ", ".join(f"sum({c}_s) / 3600 AS {c}_h, "
                     f"sum(cost_usd * {c}_s / nullif(measured_s, 0)) AS {c}_usd" for c in CAUSES)
    row = _df(con, f"SELECT {cols} FROM gpu_time WHERE hour >= ? AND hour < ?",
              [week.start, week.end]).iloc[0]
    out = pd.DataFrame({"cause": CAUSES,
                        "gpu_hours": [row[f"{c}_h"] for c in CAUSES],
                        "usd": [row[f"{c}_usd"] for c in CAUSES]}).fillna(0.0)
    return out.sort_values("usd", ascending=False, ignore_index=True)


def _opportunities(con: duckdb.DuckDBPyConnection, week: Week, tz: str) -> list[str]:
    """The largest avoidable costs of the week, in plain words, dearest first."""
    found: list[tuple[float, str]] = []
    nights = _df(con, """
        SELECT host_name, gpu_model, gpu_uuid,
               sum(idle_s) / nullif(sum(measured_s), 0) AS idle_share,
               sum(idle_cost_usd) AS idle_usd
        FROM gpu_time
        WHERE hour >= ? AND hour < ?
          AND hour(timezone(?, hour)) >= ? AND hour(timezone(?, hour)) < ?
        GROUP BY ALL HAVING sum(measured_s) > 0 ORDER BY idle_usd DESC LIMIT 3""",
                 [week.start, week.end, tz, NIGHT_HOURS[0], tz, NIGHT_HOURS[1]])
    for r in nights.itertuples():
        if r.idle_share >= 0.5:
            found.append((r.idle_usd, (
                f"GPU {r.host_name}/{r.gpu_uuid[:12]} ({r.gpu_model}) was idle "
                f"{r.idle_share:.0%} of night hours ({NIGHT_HOURS[0]:02d}:00–"
                f"{NIGHT_HOURS[1]:02d}:00 {tz}): ${r.idle_usd:,.2f} of idle time. Scale it in "
                "at night or move batch work there.")))
    waste = _df(con, """
        SELECT tenant, model, outcome, count(*) AS requests, sum(cost_usd) AS usd,
               sum(gpu_seconds) / 3600 AS gpu_hours
        FROM request_costs
        WHERE started_at >= ? AND started_at < ? AND outcome IN ('client_abort', 'timeout',
                                                                 'error')
        GROUP BY ALL HAVING sum(cost_usd) > 0 ORDER BY usd DESC LIMIT 2""",
                [week.start, week.end])
    words = {"client_abort": "hung up on", "timeout": "timed out on", "error": "failed on"}
    for r in waste.itertuples():
        found.append((r.usd, (
            f"{r.requests:,} requests from {r.tenant} {words[r.outcome]} {r.model}, wasting "
            f"{r.gpu_hours:,.1f} GPU-hours (${r.usd:,.2f}).")))
    slo = _df(con, """
        SELECT model, avg(slo_met::INT) AS attainment, count(*) AS requests,
               quantile_cont(ttft_s, 0.95) AS ttft_p95_s, sum(cost_usd) AS usd
        FROM request_costs WHERE started_at >= ? AND started_at < ?
        GROUP BY ALL HAVING avg(slo_met::INT) < 0.95 ORDER BY attainment LIMIT 2""",
              [week.start, week.end])
    for r in slo.itertuples():
        found.append((r.usd or 0.0, (
            f"{r.model} met its latency objectives for only {r.attainment:.0%} of "
            f"{r.requests:,} requests (p95 TTFT {r.ttft_p95_s:.2f} s).")))
    return [text for _, text in sorted(found, key=lambda x: -x[0])][:5]


def weekly_figures(con: duckdb.DuckDBPyConnection, week: Week, tz: str = "UTC"
                   ) -> WeeklyFigures:
    previous = week.previous()
    this, last = Filters(start=week.start, end=week.end), Filters(previous.start, previous.end)
    daily = _df(con, """
        SELECT date_trunc('day', timezone(?, hour)) AS day, model, sum(cost_usd) AS cost_usd
        FROM cost_hourly WHERE hour >= ? AND hour < ? GROUP BY ALL ORDER BY 1""",
                [tz, week.start, week.end])
    gpu_daily = _df(con, f"""
        SELECT date_trunc('day', timezone(?, hour)) AS day,
               sum(useful_s) / nullif(sum(measured_s), 0) AS useful,
               sum(idle_s) / nullif(sum(measured_s), 0) AS idle,
               sum({WASTE}) / nullif(sum(measured_s), 0) AS wasted
        FROM gpu_time WHERE hour >= ? AND hour < ? GROUP BY ALL ORDER BY 1""",
                    [tz, week.start, week.end])
    unmeasured = _df(con, """
        SELECT host_name || '/' || left(gpu_uuid, 12) AS gpu, sum(unmeasured_s) / 3600 AS gpu_hours,
               string_agg(DISTINCT unmeasured_reasons, ', ') AS reasons
        FROM gpu_time WHERE hour >= ? AND hour < ? AND unmeasured_s > 0
        GROUP BY ALL ORDER BY gpu_hours DESC""", [week.start, week.end])
    simulated = _df(con, """
        SELECT coalesce(bool_or(simulated), false) AS s FROM gpu_time
        WHERE hour >= ? AND hour < ?""", [week.start, week.end])["s"].iloc[0]
    return WeeklyFigures(
        week, previous, kpis(con, this), kpis(con, last), _by(con, "model", week, previous),
        _by(con, "tenant", week, previous), _waste(con, week), daily, gpu_daily,
        _opportunities(con, week, tz), bool(simulated), unmeasured)
