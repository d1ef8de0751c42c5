"""Runs the analytics over the store and publishes the derived tables.

Work goes window by window (a UTC day, or the hours a live run's new data touched;
``windows.py``). Each window is a partition (``partition.py``), computed wherever the
executor runs it (``executors.py``: here, a local pool, Ray): staging views over the
window's raw data (plus margins), every step in an in-memory DuckDB connection
(``compute.py``, in the order the SQL files declare: ``models.py``). This run then puts the
window's rows of every published table in a new snapshot of the derived tables
(``publish.py``), switched in for all tables at once — a re-run gives the
same result and readers never see a half state. A window whose conservation check fails
publishes nothing and stops the run; windows before it in the same run stay published (each
is complete and checked on its own). The watermark (``watermark.py``) says what the
published results are based on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from analytics.executors import open_executor
from analytics.partition import Computed, Partition, compute_partition
from analytics.pricing import Pricing, load_pricing
from analytics.publish import apply
from analytics.settings import Settings
from analytics.watermark import Watermark, derived_shape, write_json
from analytics.windows import DAY_S, Window, day_label, probe, windows_to_run
from inferledger.errors import UserError
from inferledger.store import DataDir, write_catalog
from inferledger.store.catalog import init_raw
from inferledger.store.snapshots import Snapshot, day_file, files_at

log = logging.getLogger("inferledger.analytics")

DEFAULT_LATENESS_S = 3_600.0
RECEIPT_SLACK_S = 60.0


class RepriceRequired(UserError):
    """The pricing version or attribution method differs from what past results used."""


@dataclass(frozen=True)
class RunResult:
    requests: int
    intervals: int
    conservation_max_rel_error: float
    seconds: float
    days: int = 0
    windows: int = 0
    partition_s: tuple[float, ...] = ()  # each partition's compute time, in order


def _partitions(data: DataDir, windows: list[Window], complete_before: float
                ) -> list[Partition]:
    """The windows as partitions. Days ending by ``complete_before`` have all their data:
    computed whole, they are published as one file per table. A window of hours in a day
    published that way (an old release's, or a longer lateness than before) is computed as
    the whole day instead."""
    out = []
    for w in windows:
        if not w.whole_day and files_at(data.derived_table("requests"), day_file(day_label(w.day))):
            w = Window(w.day, w.day + DAY_S)
        out.append(Partition(w, final=w.whole_day and w.day + DAY_S <= complete_before))
    return out


def _publish(data: DataDir, done: Computed) -> None:
    """One window's results in a new snapshot of the derived tables, switched in whole."""
    snap = Snapshot(data)
    try:
        apply(snap, done.plan)
        snap.commit()
    except BaseException:
        snap.abandon()
        raise


def run(data: DataDir, pricing_path: str | Path | None = None,
        settings: Settings | None = None, *, reprice: bool = False,
        since: float | None = None, until: float | None = None,
        lateness_s: float = DEFAULT_LATENESS_S,
        progress: Callable[[int, int, str], None] | None = None,
        wait_s: float = 0.0, executor: str = "local", workers: int | None = None,
        ray_address: str | None = None) -> RunResult:
    """Compute and publish the derived tables, one UTC day at a time.

    One run at a time writes a data directory: the run holds its analytics lock, waiting
    up to ``wait_s`` for another run to finish, else :class:`~inferledger.locks.Busy`.

    Without ``since``/``until`` it processes what is new since the watermark, re-running the
    last ``lateness_s`` of days so late spans and samples are picked up; re-running a day
    replaces its partitions (idempotent). Past results are never silently re-priced: if the
    pricing version or attribution method differs from the published results', the run
    stops unless ``reprice`` is set (which recomputes every day).

    Each window is a partition computed by ``executor`` (``analytics/executors.py``: a local
    process pool by default when there are several, or Ray tasks at ``ray_address``) and
    published here, in order, as it comes back.
    """
    started = time.monotonic()
    settings = settings or Settings()
    pricing = load_pricing(pricing_path)
    with data.ensure().analytics_lock().acquire(
            wait_s, hint="one analytics run at a time; try again when it is done"):
        return _run(data, pricing, settings, reprice=reprice, since=since, until=until,
                    lateness_s=lateness_s, progress=progress, started=started,
                    executor=(executor, workers, ray_address))


def _run(data: DataDir, pricing: Pricing, settings: Settings, *, reprice: bool,
         since: float | None, until: float | None, lateness_s: float,
         progress: Callable[[int, int, str], None] | None, started: float,
         executor: tuple[str, int | None, str | None]) -> RunResult:
    init_raw(data)
    state = Watermark.read(data)
    if state and (state.pricing_version, state.method) != (pricing.version, settings.method) \
            and not reprice:
        raise RepriceRequired(
            f"published results use pricing {state.pricing_version!r} and method "
            f"{state.method!r}; this run has pricing {pricing.version!r} and method "
            f"{settings.method!r}. Re-run with `inferledger analytics run --reprice` to "
            "recompute past windows with them.")
    probed_at = time.time()
    found = probe(data, state.received_s if state and state.received_s else None)
    span = found.span
    reshape = state is not None and state.shape != derived_shape(settings)
    if reshape:
        log.warning("the published results were computed with another shape (%r, now %r: a "
                    "new release, or other [answers] keys): recomputing every day from raw",
                    state.shape, derived_shape(settings))
    windows = windows_to_run(span, state, since=since, until=until, lateness_s=lateness_s,
                             reprice=reprice or reshape,
                             whole_days=pricing.idle_policy != "separate",
                             touched=found.touched)
    requests = intervals = 0
    worst = 0.0
    end = max(state.watermark_s, span[1]) if state and span else (span[1] if span else 0.0)
    complete_before = math.floor((end - lateness_s) / DAY_S) * DAY_S
    parts = _partitions(data, windows, complete_before)
    kind, workers, address = executor
    pool = open_executor(kind, len(parts), workers=workers, address=address)
    seconds: list[float] = []
    try:
        calls = [(str(data.root), part, pricing, settings, pool.share) for part in parts]
        for i, done in enumerate(pool.map(compute_partition, calls), 1):
            _publish(data, done)
            requests, intervals = requests + done.requests, intervals + done.intervals
            worst = max(worst, done.conservation_max_rel_error)
            seconds.append(done.seconds)
            if progress:
                progress(i, len(parts), done.plan.window.label())
    finally:
        pool.close()
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
            received = max(received, min(found.received_s, probed_at - RECEIPT_SLACK_S))
        Watermark(watermark, pricing.version, settings.method, settled, shape, received).write(data)
        write_json(data.analytics_config, {"pricing": asdict(pricing),
                                            "settings": asdict(settings),
                                            "written_at": datetime.now(UTC).isoformat()})
    write_catalog(data)
    result = RunResult(requests, intervals, worst, time.monotonic() - started,
                       len({w.day for w in windows}), len(windows), tuple(seconds))
    log.info("analytics: %s, %d requests, %d GPU intervals, conservation max rel error "
             "%.2e (%.2fs)", ", ".join(w.label() for w in windows), result.requests,
             result.intervals, worst, result.seconds)
    return result
