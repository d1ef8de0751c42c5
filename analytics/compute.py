"""One window's computation on a DuckDB connection that holds its staging views: the
settings and prices registered as tables and variables, every step in order (the SQL files
and, between them, the attribution kernel), then the conservation check.

Raises :class:`ConservationError` when the invariant fails anywhere, so nothing computed
from a broken split is published.
"""

from __future__ import annotations

import logging

import duckdb
import pyarrow as pa

from analytics.attribution import attribute
from analytics.models import KERNEL, KERNEL_INPUTS, PRICES, read_sql, step_sql, steps
from analytics.pricing import Pricing
from analytics.settings import Settings
from inferledger.errors import ProductError

log = logging.getLogger("inferledger.analytics")

CONSERVATION_TOLERANCE = 1e-9
# Views read once per window into temporary tables, in dependency order: the staging views
# over them and the steps read them several times, and each read of a view would scan the
# segments (and deduplicate spans, pivot GPU samples) again; a temporary table is found
# before the view of the same name. A live 2-hour window's compute: 1.4 s → 0.9 s.
MATERIALISED = ("raw_metric_points", "stg_spans", "stg_gpu_samples")


class ConservationError(ProductError):
    """Attributed + idle did not add up to measured for some GPU and window: a bug in the
    attribution, never the user's doing; nothing from the window is published."""


def register_config(con: duckdb.DuckDBPyConnection, pricing: Pricing,
                    settings: Settings) -> None:
    """The settings and prices the SQL reads: scalars as variables (``getvariable``), lists
    as tables (``config_*``, ``pricing_api``)."""
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
    con.register("config_placement", pa.table({
        "host_name": pa.array([p[0] for p in settings.placement], pa.string()),
        "model": pa.array([p[1] for p in settings.placement], pa.string()),
        "gpu_uuid": pa.array([p[2] for p in settings.placement], pa.string())}))
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
    rows: dict[str, list] = {"gpu_model": [], "usd_per_gpu_hour": [], "basis": []}
    for (m,) in con.execute(read_sql("run", "gpu_models")).fetchall():
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
    intervals, requests, placements, recompute, loading = (
        con.sql(read_sql("kernel", name)).to_arrow_table() for name in KERNEL_INPUTS)
    result = attribute(intervals, requests, placements, recompute=recompute, loading=loading,
                       method=settings.method, prefill_weight=settings.prefill_token_weight)
    con.register("kernel_segments", result.per_segment)
    con.register("kernel_windows", result.per_window)


def check_conservation(con: duckdb.DuckDBPyConnection) -> float:
    """The window's worst relative error, or :class:`ConservationError` beyond tolerance."""
    worst_rows = con.execute(read_sql("run", "conservation_worst")).fetchall()
    worst = worst_rows[0][4] if worst_rows and worst_rows[0][4] is not None else 0.0
    if worst > CONSERVATION_TOLERANCE:
        raise ConservationError(
            f"conservation violated: max relative error {worst:.3e} > "
            f"{CONSERVATION_TOLERANCE:g}; worst windows: {[r[:4] for r in worst_rows]}")
    return float(worst)


def compute(con: duckdb.DuckDBPyConnection, pricing: Pricing, settings: Settings,
            only: tuple[str, ...] | None = None) -> float:
    """Run every step (or ``only`` these, in the order given) on ``con``, which has their
    inputs; return the worst conservation error (0 when the check is not among them)."""
    register_config(con, pricing, settings)
    # Raw data a caller registered from memory (a temporary view) is read as it stands.
    stored = {name for (name,) in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT temporary AND NOT internal").fetchall()}
    for view in (v for v in MATERIALISED if v in stored):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {view} AS SELECT * FROM main.{view}"
                    ).fetchall()
    run = only if only is not None else steps()
    for step in run:
        if step == PRICES:
            _register_gpu_prices(con, pricing)
        elif step == KERNEL:
            _run_kernel(con, settings)
        else:
            con.execute(step_sql(step)).fetchall()
    return check_conservation(con) if "marts/mart_conservation" in run else 0.0
