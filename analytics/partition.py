"""One partition's work: a window computed from the raw store, returned as what it
publishes. It reads only raw data and writes nothing, so any process can run it — this
one, a local pool's, a Ray worker's — while the run that holds the analytics lock
publishes the results one window at a time."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analytics.compute import compute
from analytics.models import read_sql
from analytics.pricing import Pricing
from analytics.publish import Plan, plan
from analytics.settings import Settings
from analytics.windows import DAY_S, Window, raw_ranges
from inferledger.store import DataDir, retry_vanished
from inferledger.store.catalog import views_sql


@dataclass(frozen=True)
class Partition:
    """A window to compute, and whether its day is complete (published as one file)."""

    window: Window
    final: bool


@dataclass(frozen=True)
class Computed:
    plan: Plan
    requests: int
    intervals: int
    conservation_max_rel_error: float
    seconds: float


def compute_partition(root: str | Path, part: Partition, pricing: Pricing,
                      settings: Settings, share: float = 1.0) -> Computed:
    """The window with its margins, computed in a connection of its own, with ``share`` of
    this machine's cores and memory (a pool's workers split them: DuckDB would otherwise give
    each one every core and 80% of the memory)."""
    started = time.monotonic()
    data = DataDir.at(root)
    return retry_vanished(lambda: _compute(data, part, pricing, settings, share, started))


def _compute(data: DataDir, part: Partition, pricing: Pricing, settings: Settings,
             share: float, started: float) -> Computed:
    w = part.window
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()  # hours and days are UTC windows
        if share < 1.0:
            cores = len(os.sched_getaffinity(0))
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            con.execute(f"SET threads = {max(1, int(cores * share))}").fetchall()
            con.execute(f"SET memory_limit = '{int(memory * 0.8 * share) >> 20}MB'").fetchall()
        con.execute(views_sql(data, include_derived=False,
                              time_ranges_ns=raw_ranges(w, settings))).fetchall()
        con.execute("SET VARIABLE keep_from = ?", [w.day]).fetchall()
        con.execute("SET VARIABLE keep_until = ?", [w.day + DAY_S]).fetchall()
        worst = compute(con, pricing, settings)
        planned = plan(con, w, part.final)
        n_req, n_iv = con.execute(read_sql("run", "window_counts"),
                                  {"lo": w.lo, "hi": w.hi}).fetchall()[0]
    finally:
        con.close()
    return Computed(planned, n_req, n_iv, worst, time.monotonic() - started)
