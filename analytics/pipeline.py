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
    "intermediate/int_answers",
    "intermediate/int_request_gpus",
    "intermediate/int_gpu_intervals",
    "intermediate/int_gpu_overheads",
    "intermediate/int_attribution_inputs",
    ATTRIBUTE,
    "intermediate/int_attribution",
    "marts/mart_gpu_time",
    "marts/mart_request_costs",
    "marts/mart_answer_costs",
    "marts/mart_spend",
    "marts/mart_gpu_activity",
    "marts/mart_node_power",
    "marts/mart_latency",
    "marts/mart_cost_hourly",
    "marts/mart_cost_daily",
    "marts/mart_conservation",
)
# Tables the steps create → the names they are published under (the SQL API, docs/SQL.md).
PUBLISHED = {
    "int_requests": "requests",
    "int_answers": "answers",
    "int_request_gpus": "request_gpus",
    "int_gpu_intervals": "gpu_intervals",
    "int_attribution": "attribution",
    "mart_gpu_time": "gpu_time",
    "mart_request_costs": "request_costs",
    "mart_answer_costs": "answer_costs",
    "mart_spend": "spend_hourly",
    "mart_gpu_activity": "gpu_activity",
    "mart_node_power": "node_power",
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
    windows: int = 0


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
    con.execute("SET VARIABLE answer_keys = ?::VARCHAR[]", [list(settings.answer_keys)]
                ).fetchall()
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
                                         pa.float64()),
        "kv_bytes_per_token": pa.array([m.kv_bytes_per_token for m in settings.models],
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
    # The window's spans, deduplicated once: the staging views over them (edge, engine and
    # start-up spans) and the steps read them several times, and each read of the view would
    # scan and deduplicate the raw segments again (a temporary table is found before the
    # view of the same name). A 2-hour window's compute: 1.37 s → 0.8 s (bench/RESULTS.md).
    con.execute("CREATE OR REPLACE TEMP TABLE stg_spans AS SELECT * FROM main.stg_spans"
                ).fetchall()
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
HOUR_S = 3_600
MARGIN_S = 3_600.0
DEFAULT_LATENESS_S = 3_600.0

# Published table → the epoch-seconds expression that puts a row in a UTC day (and hour).
# Rows of a window are computed with MARGIN_S of data either side, so requests and
# intervals crossing its edges are whole; only the window's own rows are kept. None: see
# _window_rows; DAILY tables are recomputed from the day's published rows.
DAY_KEY: dict[str, str | None] = {
    "int_requests": "started_s",
    "int_answers": "started_s",
    "int_request_gpus": None,
    "int_gpu_intervals": "t0",
    "int_attribution": "epoch(hour)",
    "mart_gpu_time": "epoch(hour)",
    "mart_request_costs": "epoch(started_at)",
    "mart_answer_costs": "epoch(started_at)",
    "mart_spend": "epoch(hour)",
    "mart_gpu_activity": "epoch(hour)",
    "mart_node_power": "epoch(hour)",
    "mart_latency": None,
    "mart_cost_hourly": "epoch(hour)",
    "mart_cost_daily": "epoch(day)",
    "mart_conservation": "epoch(hour)",
}
DAILY = ("mart_latency", "mart_cost_daily")  # one row set per day, whatever the window


@dataclass(frozen=True)
class Window:
    """Hours of one UTC day to (re)compute: the whole day, or its last hours while live."""

    lo: float  # epoch s, on the hour
    hi: float  # epoch s, on the hour, at most the day's end

    @property
    def day(self) -> float:
        return math.floor(self.lo / DAY_S) * DAY_S

    @property
    def whole_day(self) -> bool:
        return self.lo == self.day and self.hi == self.day + DAY_S

    def label(self) -> str:
        if self.whole_day:
            return _day_label(self.day)
        return (f"{_day_label(self.day)} {(self.lo - self.day) / HOUR_S:02.0f}:00–"
                f"{(self.hi - self.day) / HOUR_S:02.0f}:00")


# What the derived tables hold, beyond prices and method: bumped when a release adds or
# changes derived tables (2: answers and answer_costs), so results computed by an older
# release are recomputed from raw once, whole, instead of mixing two shapes.
DERIVED_VERSION = 2


def derived_shape(settings: Settings) -> str:
    """The derived tables' version and the settings that shape them without pricing them
    (how requests group into answers): a change recomputes every day."""
    return f"{DERIVED_VERSION}:{','.join(settings.answer_keys)}"


@dataclass(frozen=True)
class State:
    """What the published results are based on, how far the data they saw went, the day
    from which on days have not yet been computed whole after their data was complete, and
    the shape of the derived tables (``derived_shape``; empty: an older release's)."""

    watermark_s: float
    pricing_version: str
    method: str
    settled_s: float = 0.0
    shape: str = ""

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


def _days(lo: float, hi: float) -> list[float]:
    first, last = math.floor(lo / DAY_S) * DAY_S, math.floor(hi / DAY_S) * DAY_S
    return [float(d) for d in range(int(first), int(last) + DAY_S, DAY_S)]


def _whole(days: list[float]) -> list[Window]:
    return [Window(d, d + DAY_S) for d in days]


def windows_to_run(span: tuple[float, float] | None, state: State | None, *,
                   since: float | None, until: float | None, lateness_s: float,
                   reprice: bool, whole_days: bool = False) -> list[Window]:
    """What to (re)compute: a backfill range, everything, or what is new since the watermark.

    A backfill, a first run and a re-price compute whole UTC days. A live run recomputes only
    the hours from ``lateness_s`` before the watermark to the newest data, and each day
    whose data has become complete (its end more than ``lateness_s`` behind the watermark)
    once more whole, so every finished day is computed from all of its data once (the
    attribution's fits see the whole day). ``whole_days`` makes live runs compute whole days
    too (an idle policy other than 'separate' shares idle over the day). ``span`` is the raw
    data's time range; with no data at all, today (empty tables).
    """
    if since is not None or until is not None:
        lo = since if since is not None else (span[0] if span else time.time())
        hi = until if until is not None else (span[1] if span else time.time())
        return _whole(_days(lo, hi))
    if span is None:
        return _whole(_days(time.time(), time.time()))
    if state is None or reprice:
        return _whole(_days(*span))
    # never before the earliest data, whatever the watermark says
    lo = max(min(state.watermark_s - lateness_s, span[1]), span[0])
    complete = math.floor((max(state.watermark_s, span[1]) - lateness_s) / DAY_S) * DAY_S
    settle = [d for d in _days(lo, span[1]) if state.settled_s <= d and d + DAY_S <= complete]
    if whole_days:
        return _whole(_days(lo, span[1]))
    out = _whole(settle)
    hour = math.floor(lo / HOUR_S) * HOUR_S
    end = math.floor(span[1] / HOUR_S) * HOUR_S + HOUR_S
    for d in _days(hour, span[1]):
        if d in settle:
            continue
        w = Window(max(hour, d), min(end, d + DAY_S))
        out.append(Window(d, d + DAY_S) if w.lo == d and w.hi == d + DAY_S else w)
    return out


def _window_rows(table: str, lo: float, hi: float) -> str:
    """The SELECT of ``table``'s rows that belong to [lo, hi)."""
    key = DAY_KEY[table]
    if key is not None:
        return f"SELECT * FROM {table} WHERE {key} >= {lo} AND {key} < {hi}"
    if table == "int_request_gpus":
        return ("SELECT * FROM int_request_gpus WHERE request_uid IN (SELECT request_uid "
                f"FROM int_requests WHERE started_s >= {lo} AND started_s < {hi})")
    return f"SELECT * FROM {table}"  # mart_latency: computed for its day (keep_from/_until)


def _publish_day(con: duckdb.DuckDBPyConnection, data: DataDir, day: float) -> None:
    label = _day_label(day)
    for table, published in PUBLISHED.items():
        arrow = con.sql(_window_rows(table, day, day + DAY_S)).to_arrow_table()
        write_parquet_atomic(arrow, data.derived_partition(published, label), durable=False)


def _publish_hours(con: duckdb.DuckDBPyConnection, data: DataDir, w: Window) -> None:
    """Replace the window's hours in its day's partitions: the day's other rows stay as they
    were; then the per-day tables are recomputed from the day's rows as now published."""
    label = _day_label(w.day)
    for table, published in PUBLISHED.items():
        if table in DAILY:
            continue
        path = data.derived_partition(published, label)
        rows = con.sql(_window_rows(table, w.lo, w.hi)).to_arrow_table()
        if path.exists():
            con.register("old_rows", _old_rows(con, data, table, str(path), label, w))
            con.register("new_rows", rows)
            rows = con.sql("SELECT * FROM old_rows UNION ALL BY NAME SELECT * FROM new_rows"
                           ).to_arrow_table()
            con.unregister("old_rows")
            con.unregister("new_rows")
        write_parquet_atomic(rows, path, durable=False)
    day = duckdb.connect()
    try:
        day.execute("SET TimeZone = 'UTC'").fetchall()
        day.execute("SET VARIABLE keep_from = ?", [w.day]).fetchall()
        day.execute("SET VARIABLE keep_until = ?", [w.day + DAY_S]).fetchall()
        for name, published in (("int_requests", "requests"),
                                ("mart_cost_hourly", "cost_hourly")):
            day.read_parquet(str(data.derived_partition(published, label))).create_view(name)
        day.read_parquet(str(data.derived_partition("request_costs", label))).select(
            "request_uid, slo_met").create_view("int_request_slo")
        for table in DAILY:
            day.execute(_sql(f"marts/{table}")).fetchall()
            write_parquet_atomic(day.sql(f"SELECT * FROM {table}").to_arrow_table(),
                                 data.derived_partition(PUBLISHED[table], label), durable=False)
    finally:
        day.close()


def _old_rows(con: duckdb.DuckDBPyConnection, data: DataDir, table: str, path: str,
              label: str, w: Window) -> pa.Table:
    """The rows of a published day partition outside the window."""
    key = DAY_KEY[table]
    if key is not None:
        return con.read_parquet(path).filter(
            f"NOT ({key} >= {w.lo} AND {key} < {w.hi})").to_arrow_table()
    # int_request_gpus: the rows of requests that started outside the window (requests'
    # rows outside it are the ones published before, whether or not it is merged yet)
    con.read_parquet(str(data.derived_partition("requests", label))).filter(
        f"NOT (started_s >= {w.lo} AND started_s < {w.hi})").select("request_uid").create_view(
        "requests_outside")
    return con.read_parquet(path).filter(
        "request_uid IN (SELECT request_uid FROM requests_outside)").to_arrow_table()


def _run_window(data: DataDir, w: Window, pricing: Pricing, settings: Settings
                ) -> tuple[int, int, float]:
    """Compute one window (with margins) and publish its rows."""
    span = (int((w.lo - MARGIN_S) * 1e9), int((w.hi + MARGIN_S) * 1e9))
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()  # hours and days are UTC windows
        con.execute(views_sql(data, include_derived=False, time_range_ns=span)).fetchall()
        con.execute("SET VARIABLE keep_from = ?", [w.day]).fetchall()
        con.execute("SET VARIABLE keep_until = ?", [w.day + DAY_S]).fetchall()
        worst = compute(con, pricing, settings)
        if w.whole_day:
            _publish_day(con, data, w.day)
        else:
            _publish_hours(con, data, w)
        n_req, n_iv = con.execute(
            f"SELECT (SELECT count(*) FROM int_requests WHERE started_s >= {w.lo} AND "
            f"started_s < {w.hi}), (SELECT count(*) FROM int_gpu_intervals WHERE "
            f"t0 >= {w.lo} AND t0 < {w.hi})").fetchall()[0]
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
    reshape = state is not None and state.shape != derived_shape(settings)
    if reshape:
        log.warning("the published results were computed with another shape (%r, now %r: a "
                    "new release, or other [answers] keys): recomputing every day from raw",
                    state.shape, derived_shape(settings))
    windows = windows_to_run(span, state, since=since, until=until, lateness_s=lateness_s,
                             reprice=reprice or reshape,
                             whole_days=pricing.idle_policy != "separate")
    requests = intervals = 0
    worst = 0.0
    for i, window in enumerate(windows, 1):
        n_req, n_iv, w = retry_vanished(lambda x=window: _run_window(data, x, pricing,
                                                                     settings))
        requests, intervals, worst = requests + n_req, intervals + n_iv, max(worst, w)
        if progress:
            progress(i, len(windows), window.label())
    if span is not None:  # no data yet: no watermark to keep
        watermark = state.watermark_s if state else span[1]
        settled = state.settled_s if state else 0.0
        if since is None and until is None:  # a backfill does not move the watermark
            watermark = max(watermark, span[1])
            # every day that ended lateness before the data's end has now been whole
            settled = max(settled, math.floor((watermark - lateness_s) / DAY_S) * DAY_S)
        if since is not None or until is not None:  # a backfill leaves the rest as it was
            shape = state.shape if state else derived_shape(settings)
        else:
            shape = derived_shape(settings)
        State(watermark, pricing.version, settings.method, settled, shape).write(data)
        _write_json(data.analytics_config, {"pricing": asdict(pricing),
                                            "settings": asdict(settings),
                                            "written_at": datetime.now(UTC).isoformat()})
    write_catalog(data)
    result = RunResult(requests, intervals, worst, time.monotonic() - started,
                       len({w.day for w in windows}), len(windows))
    log.info("analytics: %s, %d requests, %d GPU intervals, conservation max rel error "
             "%.2e (%.2fs)", ", ".join(w.label() for w in windows), result.requests,
             result.intervals, worst, result.seconds)
    return result
