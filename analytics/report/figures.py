"""What the weekly report says, read from the published results through inferledger/results/kpis.py
(the figures the dashboard shows): the week's headline figures against the week before, the
spend bridge, the top tenants and models and the biggest movers, waste by cause, the
largest opportunities in words — and what the week's data covers, so a partial week or a
first week is never compared as if it were whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import pandas as pd

from analytics.report.week import Week
from inferledger.results.filters import Filters, floor_hour
from inferledger.results.kpis import (
    NOT_CHARGED,
    bridge,
    by_dimension,
    headline,
    in_buckets,
    no_value,
)
from inferledger.store import read_df as _df
from inferledger.vocabulary import BRIDGE, WASTED

NIGHT_HOURS = (0, 6)  # local hours [start, end) counted as night


@dataclass(frozen=True)
class Coverage:
    """The data a week's figures stand on: its first and last sample within the week, and
    whether the week (and the one before it) is whole."""

    first: datetime | None
    last: datetime | None
    complete: bool  # the data reaches the week's end
    previous_complete: bool  # the data began before the previous week did

    def days(self) -> float:
        return 0.0 if self.first is None or self.last is None else \
            (self.last - self.first).total_seconds() / 86400


@dataclass
class WeeklyFigures:
    week: Week
    previous: Week
    now: pd.Series
    before: pd.Series
    by_model: pd.DataFrame  # kpis.by_dimension per model, with last week's total beside it
    by_tenant: pd.DataFrame
    waste: pd.DataFrame  # cause, gpu_hours, usd
    daily: pd.DataFrame  # day, model, cost_usd (for the chart)
    gpu_daily: pd.DataFrame  # day, useful, wasted, idle fractions
    spend: pd.DataFrame = field(default_factory=pd.DataFrame)  # the bridge: bucket, usd, ...
    coverage: Coverage = Coverage(None, None, True, True)
    opportunities: list[str] = field(default_factory=list)
    simulated: bool = False
    unmeasured: pd.DataFrame | None = None  # gpu, gpu_hours, reasons: quarantined, unpriced

    @property
    def empty(self) -> bool:
        """Nothing measured this week: no responses and no GPU time."""
        return all(pd.isna(v) or not v for v in (self.now.get("requests"),
                                                  self.now.get("gpu_spend_usd")))

    @property
    def comparable(self) -> bool:
        """Whether changes against last week mean something: both weeks whole."""
        return self.coverage.complete and self.coverage.previous_complete

    def lever(self) -> str | None:
        """The biggest lever in plain words: the largest part of spend that bought nothing."""
        spend = self.now.get("gpu_spend_usd")
        if self.spend.empty or pd.isna(spend) or not spend:
            return None
        parts = self.spend[self.spend["bucket"] != "useful"].set_index("bucket")["usd"]
        wasted = parts.reindex(list(WASTED)).fillna(0.0).sum()
        idle = parts.get("idle", 0.0)
        if idle >= wasted and idle > 0:
            return f"{idle / spend:.0%} of GPU spend was idle GPU time: ${idle:,.2f} of " \
                   f"${spend:,.2f}."
        if wasted > 0:
            worst = parts.reindex(list(WASTED)).idxmax()
            return (f"{wasted / spend:.0%} of GPU spend was wasted (${wasted:,.2f}), most of "
                    f"it {worst.replace('_', ' ')}: ${parts[worst]:,.2f}.")
        return f"All ${spend:,.2f} of GPU spend went to useful work."

    def movers(self, n: int = 3) -> pd.DataFrame:
        """Tenants and models whose cost changed most against last week, either way; none
        unless both weeks are whole (in a first week every name would be 'new')."""
        if not self.comparable:
            return pd.DataFrame(columns=["kind", "name", "total_usd", "change_usd"])
        frames = [d.assign(kind=k).rename(columns={k: "name"})
                  for k, d in (("model", self.by_model), ("tenant", self.by_tenant))]
        both = pd.concat(frames, ignore_index=True)
        both = both[both["name"] != NOT_CHARGED]
        both["change_usd"] = both["total_usd"] - both["previous_cost_usd"]
        return both.reindex(both["change_usd"].abs().sort_values(ascending=False).index).head(n)


def _by(con: duckdb.DuckDBPyConnection, dim: str, week: Week, previous: Week) -> pd.DataFrame:
    """kpis.by_dimension for the week, with last week's cost of each name beside it."""
    now = by_dimension(con, Filters(week.start, week.end), dim)
    before = by_dimension(con, Filters(previous.start, previous.end), dim)
    before = before[[dim, "total_usd"]].rename(columns={"total_usd": "previous_cost_usd"})
    out = now.merge(before, on=dim, how="left")
    out["previous_cost_usd"] = out["previous_cost_usd"].fillna(0.0)
    return out


def _waste(spend: pd.DataFrame) -> pd.DataFrame:
    out = spend[spend["bucket"] != "useful"].rename(columns={"bucket": "cause"})
    return out[["cause", "gpu_hours", "usd"]].sort_values("usd", ascending=False,
                                                           ignore_index=True)


def _coverage(con: duckdb.DuckDBPyConnection, week: Week, previous: Week) -> Coverage:
    row = _df(con, """
        SELECT (SELECT to_timestamp(min(t0)) FROM gpu_intervals) AS first_ever,
               (SELECT to_timestamp(max(t1)) FROM gpu_intervals) AS last_ever,
               (SELECT to_timestamp(min(t0)) FROM gpu_intervals
                WHERE t0 >= epoch(?::TIMESTAMPTZ) AND t0 < epoch(?::TIMESTAMPTZ)) AS first,
               (SELECT to_timestamp(max(t1)) FROM gpu_intervals
                WHERE t0 >= epoch(?::TIMESTAMPTZ) AND t0 < epoch(?::TIMESTAMPTZ)) AS last""",
              [week.start, week.end] * 2).iloc[0]

    def t(v: object) -> datetime | None:
        return None if pd.isna(v) else v.to_pydatetime()

    first_ever, last_ever = t(row["first_ever"]), t(row["last_ever"])
    return Coverage(
        t(row["first"]), t(row["last"]),
        complete=last_ever is not None and last_ever >= week.end - pd.Timedelta(minutes=5),
        previous_complete=first_ever is not None
        and floor_hour(first_ever) <= previous.start)


def _opportunities(con: duckdb.DuckDBPyConnection, week: Week, tz: str) -> list[str]:
    """The largest avoidable costs of the week, in plain words, dearest first."""
    found: list[tuple[float, str]] = []
    nights = _df(con, """
        SELECT host_name, gpu_model, count(DISTINCT gpu_uuid) AS gpus,
               sum(gpu_seconds) FILTER (WHERE bucket = 'idle')
                   / nullif(sum(gpu_seconds) FILTER (WHERE bucket <> 'unmeasured'), 0)
                   AS idle_share,
               coalesce(sum(cost_usd) FILTER (WHERE bucket = 'idle'), 0) AS idle_usd
        FROM spend_hourly
        WHERE hour >= ? AND hour < ?
          AND hour(timezone(?, hour)) >= ? AND hour(timezone(?, hour)) < ?
        GROUP BY ALL ORDER BY idle_usd DESC LIMIT 3""",
                 [week.start, week.end, tz, NIGHT_HOURS[0], tz, NIGHT_HOURS[1]])
    for r in nights.itertuples():
        if r.idle_share is not None and r.idle_share >= 0.5:
            what = f"The {r.gpus} {r.gpu_model} GPUs" if r.gpus > 1 else f"The {r.gpu_model} GPU"
            found.append((r.idle_usd, (
                f"{what} on {r.host_name} {'were' if r.gpus > 1 else 'was'} idle "
                f"{r.idle_share:.0%} of night hours ({NIGHT_HOURS[0]:02d}:00–"
                f"{NIGHT_HOURS[1]:02d}:00 {tz}): ${r.idle_usd:,.2f} of idle time. Scale "
                f"{'them' if r.gpus > 1 else 'it'} in at night or move batch work there.")))
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
    daily = _df(con, f"""
        SELECT date_trunc('day', timezone(?, hour)) AS day,
               coalesce(model, '{no_value("model")}') AS model, sum(cost_usd) AS cost_usd
        FROM spend_hourly WHERE hour >= ? AND hour < ? AND allocation = 'attributed'
        GROUP BY ALL ORDER BY 1""", [tz, week.start, week.end])
    gpu_daily = _df(con, f"""
        SELECT date_trunc('day', timezone(?, hour)) AS day,
               sum(gpu_seconds) FILTER (WHERE bucket = 'useful') / sum(gpu_seconds) AS useful,
               sum(gpu_seconds) FILTER (WHERE {in_buckets(WASTED)}) / sum(gpu_seconds)
                   AS wasted,
               sum(gpu_seconds) FILTER (WHERE bucket = 'idle') / sum(gpu_seconds) AS idle
        FROM spend_hourly WHERE hour >= ? AND hour < ? AND {in_buckets(BRIDGE)}
        GROUP BY ALL ORDER BY 1""", [tz, week.start, week.end])
    unmeasured = _df(con, """
        SELECT host_name || ' · …' || right(gpu_uuid, 6) AS gpu,
               sum(unmeasured_s) / 3600 AS gpu_hours,
               string_agg(DISTINCT unmeasured_reasons, ', ') AS reasons
        FROM gpu_time WHERE hour >= ? AND hour < ? AND unmeasured_s > 0
        GROUP BY ALL ORDER BY gpu_hours DESC""", [week.start, week.end])
    simulated = _df(con, """
        SELECT coalesce(bool_or(simulated), false) AS s FROM spend_hourly
        WHERE hour >= ? AND hour < ?""", [week.start, week.end])["s"].iloc[0]
    spend = bridge(con, this)
    return WeeklyFigures(
        week, previous, headline(con, this), headline(con, last),
        _by(con, "model", week, previous), _by(con, "tenant", week, previous), _waste(spend),
        daily, gpu_daily, spend, _coverage(con, week, previous),
        _opportunities(con, week, tz), bool(simulated), unmeasured)
