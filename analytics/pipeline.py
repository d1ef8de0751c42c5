"""Runs the analytics layers over the store and publishes the derived tables.

Work goes one UTC day at a time: staging views over that day's raw data (plus a margin),
intermediate and mart SQL files in order in an in-memory DuckDB connection, the attribution
kernel between them, then the day's rows of every published table written as one Parquet
file per table, replaced atomically — a re-run gives the same result and readers never see
a half state. A day whose conservation check fails publishes nothing and stops the run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa

from analytics.attribution import attribute
from analytics.pricing import Pricing, load_pricing
from analytics.settings import Settings
from inferledger.errors import ProductError, UserError
from inferledger.store import DataDir, retry_vanished, write_catalog, write_parquet_atomic
from inferledger.store.catalog import init_raw, views_sql

log = logging.getLogger("inferledger.analytics")

CONSERVATION_TOLERANCE = 1e-9

# SQL files (layer/name), in execution order. ATTRIBUTE is the numpy kernel
# (analytics/attribution.py) between the SQL layers.
ATTRIBUTE = "kernel"
STEPS: tuple[str, ...] = (
    "intermediate/int_requests",
    "intermediate/int_request_slo",
    "intermediate/int_request_gpus",
    "intermediate/int_gpu_intervals",
    "intermediate/int_gpu_overheads",
    "intermediate/int_attribution_inputs",
    ATTRIBUTE,
    "intermediate/int_attribution",
    "marts/mart_gpu_time",
    "marts/mart_request_costs",
    "marts/mart_spend",
    "marts/mart_latency",
    "marts/mart_cost_rollups",
    "marts/mart_conservation",
)
# Tables the steps create → the names they are published under (the SQL API, docs/SQL.md).
PUBLISHED = {
    "int_requests": "requests",
    "int_request_gpus": "request_gpus",
    "int_gpu_intervals": "gpu_intervals",
    "int_attribution": "attribution",
    "mart_gpu_time": "gpu_time",
    "mart_request_costs": "request_costs",
    "mart_spend": "spend_hourly",
    "mart_latency": "latency",
    "mart_cost_hourly": "cost_hourly",
    "mart_cost_daily": "cost_daily",
    "mart_conservation": "conservation",
}


class RepriceRequired(UserError):
    """The pricing version or attribution method differs from what past results used."""


class ConservationError(ProductError):
    """Attributed + idle did not add up to measured for some GPU and window: a bug in the
    attribution, never the user's doing; nothing from the run is published."""


@dataclass(frozen=True)
class RunResult:
    requests: int
    intervals: int
    conservation_max_rel_error: float
    seconds: float
    days: int = 0


def _sql(step: str) -> str:
    layer, name = step.split("/")
    return (resources.files("analytics") / "sql" / layer / f"{name}.sql").read_text()


def _register_config(con: duckdb.DuckDBPyConnection, pricing: Pricing, settings: Settings) -> None:
    for name, value in {
        "attribution_method": settings.method,
        "prefill_token_weight": float(settings.prefill_token_weight),
        "power_limit_margin": float(settings.power_limit_margin),
        "max_sample_gap_s": float(settings.max_sample_gap_s),
        "pue": pricing.pue,
        "usd_per_kwh": pricing.usd_per_kwh,
        "gco2e_per_kwh": pricing.gco2e_per_kwh,
        "pricing_version": pricing.version,
        "idle_policy": pricing.idle_policy,
    }.items():
        con.execute(f"SET VARIABLE {name} = ?", [value]).fetchall()
    placement = pa.table({
        "host_name": pa.array([p[0] for p in settings.placement], pa.string()),
        "model": pa.array([p[1] for p in settings.placement], pa.string()),
        "gpu_uuid": pa.array([p[2] for p in settings.placement], pa.string()),
    })
    con.register("config_placement", placement)
    con.register("config_slo", pa.table({
        "model": pa.array([s.model for s in settings.slos], pa.string()),
        **{k: pa.array([getattr(s, k) for s in settings.slos], pa.float64())
           for k in ("ttft_s", "tpot_s", "e2e_s")}}))
    con.register("config_models", pa.table({
        "model": pa.array([m.model.lower() for m in settings.models], pa.string()),
        "weights_in_kv_tokens": pa.array([m.weights_in_kv_tokens for m in settings.models],
                                         pa.float64())}))
    con.register("pricing_api", pa.table({
        "model": pa.array([a.model for a in pricing.api_prices], pa.string()),
        "usd_per_1m_input": pa.array([a.usd_per_1m_input for a in pricing.api_prices],
                                     pa.float64()),
        "usd_per_1m_output": pa.array([a.usd_per_1m_output for a in pricing.api_prices],
                                      pa.float64())}))


def _register_gpu_prices(con: duckdb.DuckDBPyConnection, pricing: Pricing) -> None:
    models = [r[0] for r in con.execute(
        "SELECT DISTINCT gpu_model FROM int_gpu_intervals WHERE gpu_model IS NOT NULL").fetchall()]
    rows = {"gpu_model": [], "usd_per_gpu_hour": [], "basis": []}
    for m in models:
        price = pricing.price_for(m)
        if price is None:
            log.warning("no price for GPU model %r in %s: its cost stays empty", m, pricing.source)
            continue
        rows["gpu_model"].append(m)
        rows["usd_per_gpu_hour"].append(price.usd_per_hour)
        rows["basis"].append(price.basis)
    con.register("pricing_gpu", pa.table(rows, schema=pa.schema(
        [("gpu_model", pa.string()), ("usd_per_gpu_hour", pa.float64()), ("basis", pa.string())])))


def _run_kernel(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    intervals = con.sql(
        "SELECT hash(gpu_uuid) AS gpu_idx, t0, t1, measured_s, measured_j, utilization, "
        "epoch(hour)::BIGINT AS window FROM int_gpu_intervals "
        "WHERE quarantine_reason IS NULL").to_arrow_table()
    requests = con.sql("SELECT req_idx, class_idx, scheduled_s, first_token_s, finished_s, "
                       "prefill_tokens, decode_tokens, context FROM int_request_work "
                       "ORDER BY req_idx").to_arrow_table()
    placements = con.sql("SELECT req_idx, gpu_idx FROM int_placements").to_arrow_table()
    recompute = con.sql("SELECT hash(gpu_uuid) AS gpu_idx, t0, t1, tokens FROM int_recompute"
                        ).to_arrow_table()
    loading = con.sql("SELECT hash(gpu_uuid) AS gpu_idx, t0, t1 FROM int_engine_loading"
                      ).to_arrow_table()
    result = attribute(intervals, requests, placements, recompute=recompute, loading=loading,
                       method=settings.method, prefill_weight=settings.prefill_token_weight)
    con.register("kernel_segments", result.per_segment)
    con.register("kernel_windows", result.per_window)


def compute(con: duckdb.DuckDBPyConnection, pricing: Pricing, settings: Settings,
            steps: tuple[str, ...] = STEPS) -> float:
    """Run ``steps`` on ``con`` (which has their inputs); return max conservation error.

    Raises :class:`ConservationError` when the invariant fails anywhere.
    """
    _register_config(con, pricing, settings)
    for step in steps:
        if step == ATTRIBUTE:
            _register_gpu_prices(con, pricing)
            _run_kernel(con, settings)
        else:
            con.execute(_sql(step)).fetchall()
    if "marts/mart_conservation" not in steps:
        return 0.0
    worst = con.execute(
        "SELECT coalesce(max(greatest(rel_error_s, rel_error_j)), 0) FROM mart_conservation"
    ).fetchall()[0][0]
    if worst > CONSERVATION_TOLERANCE:
        bad = con.execute(
            "SELECT gpu_uuid, hour, rel_error_s, rel_error_j FROM mart_conservation "
            "ORDER BY greatest(rel_error_s, rel_error_j) DESC LIMIT 3").fetchall()
        raise ConservationError(
            f"conservation violated: max relative error {worst:.3e} > "
            f"{CONSERVATION_TOLERANCE:g}; worst windows: {bad}")
    return float(worst)


DAY_S = 86_400
MARGIN_S = 3_600.0
DEFAULT_LATENESS_S = 3_600.0

# Published table → the epoch-seconds expression that puts a row in a UTC day. Rows of a
# day are computed with MARGIN_S of data either side, so requests and intervals crossing
# midnight are whole; only the day's own rows are kept. None: see _publish_day.
DAY_KEY: dict[str, str | None] = {
    "int_requests": "started_s",
    "int_request_gpus": None,
    "int_gpu_intervals": "t0",
    "int_attribution": "epoch(hour)",
    "mart_gpu_time": "epoch(hour)",
    "mart_request_costs": "epoch(started_at)",
    "mart_spend": "epoch(hour)",
    "mart_latency": None,
    "mart_cost_hourly": "epoch(hour)",
    "mart_cost_daily": "epoch(day)",
    "mart_conservation": "epoch(hour)",
}


@dataclass(frozen=True)
class State:
    """What the published results are based on, and how far the data they saw went."""

    watermark_s: float
    pricing_version: str
    method: str

    @classmethod
    def read(cls, data: DataDir) -> State | None:
        try:
            return cls(**json.loads(data.analytics_state.read_text()))
        except FileNotFoundError:
            return None

    def write(self, data: DataDir) -> None:
        _write_json(data.analytics_state, asdict(self))


def _write_json(path: Path, obj: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def effective_config(data: DataDir) -> dict | None:
    """The pricing and settings the published results use (for the dashboard), if any."""
    try:
        return json.loads(data.analytics_config.read_text())
    except FileNotFoundError:
        return None


def _day_label(day_start_s: float) -> str:
    return datetime.fromtimestamp(day_start_s, UTC).strftime("%Y-%m-%d")


def _data_range(data: DataDir) -> tuple[float, float] | None:
    """Earliest and latest time (epoch s) in the raw store, from Parquet statistics."""
    return retry_vanished(lambda: _raw_range(data))


def _raw_range(data: DataDir) -> tuple[float, float] | None:
    con = duckdb.connect()
    try:
        con.execute(views_sql(data, include_derived=False)).fetchall()
        row = con.execute(
            "SELECT least(min(s.lo), min(m.lo)), greatest(max(s.hi), max(m.hi)) FROM "
            "(SELECT min(start_time_unix_nano) lo, max(end_time_unix_nano) hi "
            " FROM raw_spans) s, "
            "(SELECT min(time_unix_nano) lo, max(time_unix_nano) hi FROM raw_metric_points) m"
        ).fetchall()[0]
    finally:
        con.close()
    return None if row[0] is None else (row[0] / 1e9, row[1] / 1e9)


def days_to_run(span: tuple[float, float] | None, state: State | None, *, since: float | None,
                until: float | None, lateness_s: float, reprice: bool) -> list[float]:
    """UTC day starts to (re)compute: a backfill range, everything, or since the watermark.

    ``span`` is the raw data's time range; with no data at all, today (empty tables).
    """
    if since is not None or until is not None:
        lo = since if since is not None else (span[0] if span else time.time())
        hi = until if until is not None else (span[1] if span else time.time())
    elif span is None:
        lo = hi = time.time()
    elif state is None or reprice:
        lo, hi = span
    else:  # never before the earliest data, whatever the watermark says
        lo, hi = max(min(state.watermark_s - lateness_s, span[1]), span[0]), span[1]
    first, last = math.floor(lo / DAY_S) * DAY_S, math.floor(hi / DAY_S) * DAY_S
    return [float(d) for d in range(int(first), int(last) + DAY_S, DAY_S)]


def _publish_day(con: duckdb.DuckDBPyConnection, data: DataDir, day: float) -> None:
    label, until = _day_label(day), day + DAY_S
    for table, published in PUBLISHED.items():
        key = DAY_KEY[table]
        if key is not None:
            sql = f"SELECT * FROM {table} WHERE {key} >= {day} AND {key} < {until}"
        elif table == "int_request_gpus":
            sql = ("SELECT * FROM int_request_gpus WHERE request_uid IN (SELECT request_uid "
                   f"FROM int_requests WHERE started_s >= {day} AND started_s < {until})")
        else:  # mart_latency: computed for this day only (keep_from / keep_until)
            sql = f"SELECT * FROM {table}"
        arrow = con.sql(sql).to_arrow_table()
        write_parquet_atomic(arrow, data.derived_partition(published, label), durable=False)


def _run_day(data: DataDir, day: float, pricing: Pricing, settings: Settings) -> tuple[int, int,
                                                                                       float]:
    """Compute one UTC day (with margins) and publish its partitions."""
    window = (int((day - MARGIN_S) * 1e9), int((day + DAY_S + MARGIN_S) * 1e9))
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()  # hours and days are UTC windows
        con.execute(views_sql(data, include_derived=False, time_range_ns=window)).fetchall()
        con.execute("SET VARIABLE keep_from = ?", [day]).fetchall()
        con.execute("SET VARIABLE keep_until = ?", [day + DAY_S]).fetchall()
        worst = compute(con, pricing, settings)
        _publish_day(con, data, day)
        n_req, n_iv = con.execute(
            f"SELECT (SELECT count(*) FROM int_requests WHERE started_s >= {day} AND "
            f"started_s < {day + DAY_S}), (SELECT count(*) FROM int_gpu_intervals WHERE "
            f"t0 >= {day} AND t0 < {day + DAY_S})").fetchall()[0]
    finally:
        con.close()
    return n_req, n_iv, worst


def run(data: DataDir, pricing_path: str | Path | None = None,
        settings: Settings | None = None, *, reprice: bool = False,
        since: float | None = None, until: float | None = None,
        lateness_s: float = DEFAULT_LATENESS_S,
        progress: Callable[[int, int, str], None] | None = None,
        wait_s: float = 0.0) -> RunResult:
    """Compute and publish the derived tables, one UTC day at a time.

    One run at a time writes a data directory: the run holds its analytics lock, waiting
    up to ``wait_s`` for another run to finish, else :class:`~inferledger.locks.Busy`.

    Without ``since``/``until`` it processes what is new since the watermark, re-running the
    last ``lateness_s`` of days so late spans and samples are picked up; re-running a day
    replaces its partitions (idempotent). Past results are never silently re-priced: if the
    pricing version or attribution method differs from the published results', the run
    stops unless ``reprice`` is set (which recomputes every day).
    """
    started = time.monotonic()
    settings = settings or Settings()
    pricing = load_pricing(pricing_path)
    with data.ensure().analytics_lock().acquire(
            wait_s, hint="one analytics run at a time; try again when it is done"):
        return _run(data, pricing, settings, reprice=reprice, since=since, until=until,
                    lateness_s=lateness_s, progress=progress, started=started)


def _run(data: DataDir, pricing: Pricing, settings: Settings, *, reprice: bool,
         since: float | None, until: float | None, lateness_s: float,
         progress: Callable[[int, int, str], None] | None, started: float) -> RunResult:
    init_raw(data)
    state = State.read(data)
    if state and (state.pricing_version, state.method) != (pricing.version, settings.method) \
            and not reprice:
        raise RepriceRequired(
            f"published results use pricing {state.pricing_version!r} and method "
            f"{state.method!r}; this run has pricing {pricing.version!r} and method "
            f"{settings.method!r}. Re-run with `inferledger analytics run --reprice` to "
            "recompute past windows with them.")
    span = _data_range(data)
    days = days_to_run(span, state, since=since, until=until, lateness_s=lateness_s,
                       reprice=reprice)
    requests = intervals = 0
    worst = 0.0
    for i, day in enumerate(days, 1):
        n_req, n_iv, w = retry_vanished(lambda d=day: _run_day(data, d, pricing, settings))
        requests, intervals, worst = requests + n_req, intervals + n_iv, max(worst, w)
        if progress:
            progress(i, len(days), _day_label(day))
    if span is not None:  # no data yet: no watermark to keep
        watermark = state.watermark_s if state else span[1]
        if since is None and until is None:  # a backfill does not move the watermark
            watermark = max(watermark, span[1])
        State(watermark, pricing.version, settings.method).write(data)
        _write_json(data.analytics_config, {"pricing": asdict(pricing),
                                            "settings": asdict(settings),
                                            "written_at": datetime.now(UTC).isoformat()})
    write_catalog(data)
    result = RunResult(requests, intervals, worst, time.monotonic() - started, len(days))
    log.info("analytics: %d day(s), %d requests, %d GPU intervals, conservation max rel "
             "error %.2e (%.2fs)", len(days), result.requests, result.intervals, worst,
             result.seconds)
    return result
