"""Runs the analytics layers over the store and publishes the derived tables.

Work goes window by window (a UTC day, or the hours a live run's new data touched):
staging views over the window's raw data (plus margins), intermediate and mart SQL files in
order in an in-memory DuckDB connection, the attribution kernel between them, then the
window's rows of every published table in a new snapshot of the derived tables (a file per
table for a finished day, per table and hour for a day still coming in), switched in for
all tables at once — a re-run gives the same result and readers never see a half state. A
window whose conservation check fails publishes nothing and stops the run.
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
from inferledger.store import DataDir, retry_vanished, write_catalog
from inferledger.store.catalog import init_raw, raw_views_sql, views_sql
from inferledger.store.snapshots import Snapshot, day_file, hour_file, hour_files_of

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


# Views read once per window into temporary tables (compute), in dependency order.
MATERIALISED = ("raw_metric_points", "stg_spans", "stg_gpu_samples")


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
    # The window's raw data read once: the staging views over it and the steps read it
    # several times, and each read of a view would scan the segments (and deduplicate
    # spans, pivot GPU samples) again; a temporary table is found before the view of the
    # same name. A live 2-hour window's compute: 1.4 s → 0.9 s (bench/RESULTS.md). Raw
    # data a caller registered from memory (a temporary view) is read as it stands.
    stored = {name for (name,) in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT temporary AND NOT internal").fetchall()}
    for view in (v for v in MATERIALISED if v in stored):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {view} AS SELECT * FROM main.{view}"
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
RECEIPT_SLACK_S = 60.0

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
    the shape of the derived tables (``derived_shape``; empty: an older release's), and the
    receipt time up to which the runs have seen all data (0: not known, as in stores of
    older releases): what was received after it is the new data a live run recomputes."""

    watermark_s: float
    pricing_version: str
    method: str
    settled_s: float = 0.0
    shape: str = ""
    received_s: float = 0.0

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


def _day_label(day_start_s: float) -> str:
    return datetime.fromtimestamp(day_start_s, UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Touched:
    """The time new data touched: from the earliest start of the new spans, of the new
    samples and of every span those overlap in time or share a trace with (their shares and
    answers change), to the latest end. Empty when nothing arrived."""

    lo: float = math.inf
    hi: float = -math.inf

    @property
    def empty(self) -> bool:
        return self.lo > self.hi


@dataclass(frozen=True)
class Probe:
    span: tuple[float, float] | None  # earliest and latest time in the raw store (epoch s)
    received_s: float  # newest receipt time
    touched: Touched | None  # what arrived after the time asked for (None: not asked)


def _probe(data: DataDir, received_after_s: float | None) -> Probe:
    """The raw data's range, from Parquet statistics, and what arrived after a time."""
    return retry_vanished(lambda: _raw_probe(data, received_after_s))


def _raw_probe(data: DataDir, received_after_s: float | None) -> Probe:
    con = duckdb.connect()
    try:
        con.execute("\n".join(raw_views_sql(data))).fetchall()
        lo, hi, received = con.execute(
            "SELECT least(min(s.lo), min(m.lo)), greatest(max(s.hi), max(m.hi)), "
            "greatest(max(s.r), max(m.r)) FROM "
            "(SELECT min(start_time_unix_nano) lo, max(end_time_unix_nano) hi, "
            " max(received_at_unix_nano) r FROM raw_spans) s, "
            "(SELECT min(time_unix_nano) lo, max(time_unix_nano) hi, "
            " max(received_at_unix_nano) r FROM raw_metric_points) m").fetchall()[0]
        if lo is None:
            return Probe(None, 0.0, None)
        touched = None
        if received_after_s is not None:
            touched = _touched(con, int(received_after_s * 1e9))
    finally:
        con.close()
    return Probe((lo / 1e9, hi / 1e9), (received or 0) / 1e9, touched)


def _touched(con: duckdb.DuckDBPyConnection, after_ns: int) -> Touched:
    con.execute(
        "CREATE TEMP TABLE new_spans AS SELECT trace_id, start_time_unix_nano AS t0, "
        "end_time_unix_nano AS t1 FROM raw_spans WHERE received_at_unix_nano > ?", [after_ns]
    ).fetchall()
    lo, hi = con.execute(
        "SELECT least((SELECT min(t0) FROM new_spans), min(time_unix_nano)), "
        "greatest((SELECT max(t1) FROM new_spans), max(time_unix_nano)) "
        "FROM raw_metric_points WHERE received_at_unix_nano > ?", [after_ns]).fetchall()[0]
    if lo is None:
        return Touched()
    # spans that started before and run into that time, or share a trace with new spans:
    # looked for among those ending at most the margin before it
    first = con.execute(
        "SELECT min(start_time_unix_nano) FROM raw_spans WHERE end_time_unix_nano >= $margin "
        "AND (end_time_unix_nano >= $lo AND start_time_unix_nano <= $hi "
        "     OR trace_id IN (SELECT trace_id FROM new_spans))",
        {"margin": lo - int(MARGIN_S * 1e9), "lo": lo, "hi": hi}).fetchall()[0][0]
    return Touched(min(lo, first if first is not None else lo) / 1e9, hi / 1e9)


def _days(lo: float, hi: float) -> list[float]:
    first, last = math.floor(lo / DAY_S) * DAY_S, math.floor(hi / DAY_S) * DAY_S
    return [float(d) for d in range(int(first), int(last) + DAY_S, DAY_S)]


def _whole(days: list[float]) -> list[Window]:
    return [Window(d, d + DAY_S) for d in days]


def windows_to_run(span: tuple[float, float] | None, state: State | None, *,
                   since: float | None, until: float | None, lateness_s: float,
                   reprice: bool, whole_days: bool = False,
                   touched: Touched | None = None) -> list[Window]:
    """What to (re)compute: a backfill range, everything, or what is new since the watermark.

    A backfill, a first run and a re-price compute whole UTC days. A live run recomputes only
    the hours new data touched (``touched``; without it, from ``lateness_s`` before the
    watermark to the newest data), never earlier than ``lateness_s`` before the watermark
    (older data is a backfill's), and each day whose data has become complete (its end more
    than ``lateness_s`` behind the watermark) once more whole, so every finished day is
    computed from all of its data once (the attribution's fits see the whole day).
    ``whole_days`` makes live runs compute whole days too (an idle policy other than
    'separate' shares idle over the day). ``span`` is the raw data's time range; with no
    data at all, today (empty tables).
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
    late = max(min(state.watermark_s - lateness_s, span[1]), span[0])
    complete = math.floor((max(state.watermark_s, span[1]) - lateness_s) / DAY_S) * DAY_S
    settle = [d for d in _days(late, span[1]) if state.settled_s <= d and d + DAY_S <= complete]
    lo, hi = late, span[1]
    if touched is not None:
        if touched.empty or touched.hi < late:
            return _whole(settle)
        lo, hi = max(touched.lo, late), min(touched.hi, span[1])
    if whole_days:
        return _whole(sorted(set(settle) | set(_days(lo, hi))))
    out = _whole(settle)
    hour = math.floor(lo / HOUR_S) * HOUR_S
    end = math.floor(hi / HOUR_S) * HOUR_S + HOUR_S
    for d in _days(hour, hi):
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


def _hours(w: Window) -> range:
    return range(int(w.lo), int(w.hi), HOUR_S)


def _publish(con: duckdb.DuckDBPyConnection, snap: Snapshot, w: Window, final: bool) -> None:
    """Put the window's rows in the snapshot: a finished day as one file per table, the
    hours of a day still coming in as one file per hour (so a live run writes only its
    hours, whatever the day already holds); then the per-day tables."""
    label = _day_label(w.day)
    for table, published in PUBLISHED.items():
        if table in DAILY:
            continue
        if final:
            snap.write(published, day_file(label), con.sql(
                _window_rows(table, w.lo, w.hi)).to_arrow_table())
            snap.remove(published, hour_files_of(label))
            continue
        if w.whole_day:
            snap.remove(published, day_file(label))
        for h in _hours(w):
            rows = con.sql(_window_rows(table, h, h + HOUR_S)).to_arrow_table()
            name = hour_file(label, (h - int(w.day)) // HOUR_S)
            if rows.num_rows:
                snap.write(published, name, rows)
            else:
                snap.remove(published, name)
        if not any(snap.table(published).glob("*.parquet")):  # a view needs a file to bind
            snap.write(published, hour_file(label, int(w.lo - w.day) // HOUR_S),
                       con.sql(_window_rows(table, w.lo, w.lo)).to_arrow_table())
    _publish_daily(con, snap, w)


def _publish_daily(con: duckdb.DuckDBPyConnection, snap: Snapshot, w: Window) -> None:
    """The per-day tables (percentiles, the day's totals): from the window's own results
    when it is the whole day, else recomputed from the day's rows in the snapshot."""
    label = _day_label(w.day)
    day_rows = {name: sorted(snap.table(name).glob(f"day={label}*.parquet"))
                for name in ("requests", "request_costs", "cost_hourly")}
    if w.whole_day or not all(day_rows.values()):
        for table in DAILY:
            snap.write(PUBLISHED[table], day_file(label),
                       con.sql(_window_rows(table, w.lo, w.hi)).to_arrow_table())
        return
    day = duckdb.connect()
    try:
        day.execute("SET TimeZone = 'UTC'").fetchall()
        day.execute("SET VARIABLE keep_from = ?", [w.day]).fetchall()
        day.execute("SET VARIABLE keep_until = ?", [w.day + DAY_S]).fetchall()
        files = {k: [str(f) for f in v] for k, v in day_rows.items()}
        day.read_parquet(files["requests"]).create_view("int_requests")
        day.read_parquet(files["cost_hourly"]).create_view("mart_cost_hourly")
        day.read_parquet(files["request_costs"]).select("request_uid, slo_met").create_view(
            "int_request_slo")
        for table in DAILY:
            day.execute(_sql(f"marts/{table}")).fetchall()
            snap.write(PUBLISHED[table], day_file(label),
                       day.sql(f"SELECT * FROM {table}").to_arrow_table())
    finally:
        day.close()


def _ranges(w: Window, settings: Settings) -> dict[str, tuple[int, int]]:
    """The raw data a window is computed from: spans overlapping it with MARGIN_S either
    side (requests crossing its edges, the rest of their answers); GPU and engine samples
    from MARGIN_S before a whole day, or from the longest valid sample gap before a window
    of hours — enough for the interval across its start — to MARGIN_S after it. Samples
    are most of the raw rows (a live agent sends one per GPU metric per second), so a live
    run reads minutes of them before its hours, not an hour."""
    before = MARGIN_S if w.whole_day else min(MARGIN_S, settings.max_sample_gap_s)
    return {"spans": (int((w.lo - MARGIN_S) * 1e9), int((w.hi + MARGIN_S) * 1e9)),
            "metric_points": (int((w.lo - before) * 1e9), int((w.hi + MARGIN_S) * 1e9))}


def _run_window(data: DataDir, w: Window, pricing: Pricing, settings: Settings,
                complete_before: float) -> tuple[int, int, float]:
    """Compute one window (with margins) and publish its rows in a new snapshot.

    Days ending by ``complete_before`` have all their data: computed whole, they are
    published as one file per table. A window of hours in a day published that way (an old
    release's, or a longer lateness than before) is computed as the whole day instead.
    """
    snap = Snapshot(data)
    try:
        if not w.whole_day and snap.has("requests", day_file(_day_label(w.day))):
            w = Window(w.day, w.day + DAY_S)
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'").fetchall()  # hours and days are UTC windows
            con.execute(views_sql(data, include_derived=False,
                                  time_ranges_ns=_ranges(w, settings))).fetchall()
            con.execute("SET VARIABLE keep_from = ?", [w.day]).fetchall()
            con.execute("SET VARIABLE keep_until = ?", [w.day + DAY_S]).fetchall()
            worst = compute(con, pricing, settings)
            _publish(con, snap, w, final=w.whole_day and w.day + DAY_S <= complete_before)
            n_req, n_iv = con.execute(
                f"SELECT (SELECT count(*) FROM int_requests WHERE started_s >= {w.lo} AND "
                f"started_s < {w.hi}), (SELECT count(*) FROM int_gpu_intervals WHERE "
                f"t0 >= {w.lo} AND t0 < {w.hi})").fetchall()[0]
        finally:
            con.close()
        snap.commit()
    except BaseException:
        snap.abandon()
        raise
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
    probed_at = time.time()
    probe = _probe(data, state.received_s if state and state.received_s else None)
    span = probe.span
    reshape = state is not None and state.shape != derived_shape(settings)
    if reshape:
        log.warning("the published results were computed with another shape (%r, now %r: a "
                    "new release, or other [answers] keys): recomputing every day from raw",
                    state.shape, derived_shape(settings))
    windows = windows_to_run(span, state, since=since, until=until, lateness_s=lateness_s,
                             reprice=reprice or reshape,
                             whole_days=pricing.idle_policy != "separate",
                             touched=probe.touched)
    requests = intervals = 0
    worst = 0.0
    end = max(state.watermark_s, span[1]) if state and span else (span[1] if span else 0.0)
    complete_before = math.floor((end - lateness_s) / DAY_S) * DAY_S
    for i, window in enumerate(windows, 1):
        n_req, n_iv, w = retry_vanished(lambda x=window: _run_window(
            data, x, pricing, settings, complete_before))
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
        received = state.received_s if state else 0.0
        if since is None and until is None:
            # a row is stamped on receipt and is in a segment only once durable (within
            # seconds): rows stamped in the last RECEIPT_SLACK_S may still have been on
            # their way, so the next run reads them again
            received = max(received, min(probe.received_s, probed_at - RECEIPT_SLACK_S))
        State(watermark, pricing.version, settings.method, settled, shape, received).write(data)
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
