"""Runs the analytics jobs on their schedule with APScheduler.

One job, one instance at a time, coalesced: if a run overlaps the next tick, the tick is
skipped rather than queued. A failing run (e.g. a conservation violation) is logged with its
reason and retried at the next tick; nothing half-computed is published.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from analytics.pipeline import run
from analytics.settings import Settings
from inferledger.store import DataDir

log = logging.getLogger("inferledger.scheduler")


def _job(data: DataDir, pricing: Path | None, settings: Settings) -> None:
    try:
        run(data, pricing, settings)
    except Exception:
        log.exception("analytics run failed; nothing from this run was published")
        raise


def run_scheduler(data: DataDir, *, interval_s: float, pricing: Path | None,
                  settings: Settings, stop: threading.Event) -> None:
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1,
                                                  "misfire_grace_time": 30})
    # First run right away, then on the interval.
    scheduler.add_job(_job, "interval", seconds=interval_s, args=(data, pricing, settings),
                      id="analytics", replace_existing=True,
                      next_run_time=datetime.now(scheduler.timezone))
    scheduler.start()
    log.info("scheduler: analytics every %.0fs over %s", interval_s, data.root)
    stop.wait()
    scheduler.shutdown(wait=True)
