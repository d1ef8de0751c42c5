"""Runs the analytics layers over the store and publishes the derived tables.

Staging views come from the catalog; intermediate and mart SQL files run in order in an
in-memory DuckDB connection; the published tables are then written as Parquet files, each
replaced atomically, so a re-run gives the same result and readers never see a half state.
A run whose conservation check fails publishes nothing and raises.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa

from analytics.attribution import attribute
from analytics.pricing import Pricing, load_pricing
from analytics.settings import Settings
from inferledger.store import DataDir, write_catalog, write_parquet_atomic
from inferledger.store.catalog import init_raw, views_sql

log = logging.getLogger("inferledger.analytics")

CONSERVATION_TOLERANCE = 1e-9

# SQL files (layer/name), in execution order. ATTRIBUTE is the numpy kernel
# (analytics/attribution.py) between the SQL layers.
ATTRIBUTE = "kernel"
STEPS: tuple[str, ...] = (
    "intermediate/int_requests",
    "intermediate/int_request_gpus",
    "intermediate/int_gpu_intervals",
    "intermediate/int_attribution_inputs",
    ATTRIBUTE,
    "intermediate/int_attribution",
    "marts/mart_gpu_time",
    "marts/mart_request_costs",
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
    "mart_latency": "latency",
    "mart_cost_hourly": "cost_hourly",
    "mart_cost_daily": "cost_daily",
    "mart_conservation": "conservation",
}


class RepriceRequired(ValueError):
    """The pricing version or attribution method differs from what past results used."""


class ConservationError(AssertionError):
    """Attributed + idle did not add up to measured for some GPU and window."""


@dataclass(frozen=True)
class RunResult:
    requests: int
    intervals: int
    conservation_max_rel_error: float
    seconds: float


def _sql(step: str) -> str:
    layer, name = step.split("/")
    return (resources.files("analytics") / "sql" / layer / f"{name}.sql").read_text()


def _register_config(con: duckdb.DuckDBPyConnection, pricing: Pricing, settings: Settings) -> None:
    for name, value in {
        "attribution_method": settings.method,
        "prefill_token_weight": float(settings.prefill_token_weight),
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
        "epoch(hour)::BIGINT AS window FROM int_gpu_intervals").to_arrow_table()
    requests = con.sql("SELECT req_idx, class_idx, scheduled_s, first_token_s, finished_s, "
                       "prefill_tokens, decode_tokens FROM int_request_work ORDER BY req_idx"
                       ).to_arrow_table()
    placements = con.sql("SELECT req_idx, gpu_idx FROM int_placements").to_arrow_table()
    result = attribute(intervals, requests, placements, method=settings.method,
                       prefill_weight=settings.prefill_token_weight)
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


def _published_basis(data: DataDir) -> tuple[str, str] | None:
    """(pricing version, attribution method) of the published results, if any."""
    path = data.derived_table("request_costs")
    if not path.exists():
        return None
    rows = duckdb.sql("SELECT any_value(pricing_version), any_value(attribution_method) "
                      "FROM read_parquet(?)", params=[str(path)]).fetchall()
    return None if rows[0][0] is None else (rows[0][0], rows[0][1])


def run(data: DataDir, pricing_path: str | Path | None = None,
        settings: Settings | None = None, *, reprice: bool = False) -> RunResult:
    """One full analytics run over ``data``; publishes the derived tables.

    Past results are never silently re-priced: if the pricing version or the attribution
    method differs from the published results', the run stops unless ``reprice`` is set.
    """
    started = time.monotonic()
    settings = settings or Settings()
    pricing = load_pricing(pricing_path)
    data.ensure()
    previous = _published_basis(data)
    if previous and previous != (pricing.version, settings.method) and not reprice:
        raise RepriceRequired(
            f"published results use pricing {previous[0]!r} and method {previous[1]!r}; this "
            f"run has pricing {pricing.version!r} and method {settings.method!r}. Re-run with "
            "`inferledger analytics run --reprice` to recompute past windows with them.")
    init_raw(data)
    con = duckdb.connect()
    try:
        con.execute(views_sql(data, include_derived=False)).fetchall()
        worst = compute(con, pricing, settings)
        for table, published in PUBLISHED.items():
            arrow = con.sql(f"SELECT * FROM {table}").to_arrow_table()
            write_parquet_atomic(arrow, data.derived_table(published), durable=False)
        n_req = con.execute("SELECT count(*) FROM int_requests").fetchall()[0][0]
        n_iv = con.execute("SELECT count(*) FROM int_gpu_intervals").fetchall()[0][0]
    finally:
        con.close()
    write_catalog(data)
    result = RunResult(n_req, n_iv, worst, time.monotonic() - started)
    log.info("analytics: %d requests, %d GPU intervals, conservation max rel error %.2e (%.2fs)",
             result.requests, result.intervals, worst, result.seconds)
    return result
