"""Runs the analytics on an interval and the weekly report on a cron schedule (APScheduler).

The analytics job lives in memory: one instance at a time, coalesced, first run right away;
a failing run (e.g. a conservation violation) is logged and retried at the next tick, and
nothing half-computed is published. The weekly report lives in a persistent job store
(SQLite in the data directory), so its next run time survives restarts: a scheduler that was
down on Monday morning finds the missed run when it comes back and runs it once (misfire
grace of six days, coalescing), and the send log (analytics/report/delivery.py) makes sure
a week already sent is never sent again.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from pathlib import Path

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from analytics.pipeline import run
from analytics.pricing import load_pricing
from analytics.report.config import ReportConfig, load_report_config
from analytics.report.weekly import send_last_week
from analytics.settings import Settings
from inferledger.locks import Busy
from inferledger.store import DataDir

log = logging.getLogger("inferledger.scheduler")
REPORT_JOB = "weekly_report"
REPORT_MISFIRE_GRACE_S = 6 * 86400


def _job(data: DataDir, pricing: Path | None, settings: Settings) -> None:
    try:
        run(data, pricing, settings)
    except Busy as e:  # a run by hand is computing the same days: this tick has nothing to add
        log.info("analytics run skipped: %s", e)
    except Exception:
        log.exception("analytics run failed; nothing from this run was published")
        raise


def job_store_url(data: DataDir) -> str:
    return f"sqlite:///{data.root}/scheduler.db"


def build_scheduler(data: DataDir) -> BackgroundScheduler:
    data.ensure()
    return BackgroundScheduler(
        jobstores={"default": MemoryJobStore(),
                   "persistent": SQLAlchemyJobStore(url=job_store_url(data))},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})


def schedule_report(scheduler: BackgroundScheduler, data: DataDir, settings_path: Path | None,
                    config: ReportConfig) -> None:
    """Add the weekly report job, or keep the stored one (and its pending run time) when its
    schedule has not changed."""
    trigger = CronTrigger.from_crontab(config.schedule, timezone=config.timezone)
    args = [str(data.root), str(settings_path) if settings_path else None]
    job = scheduler.get_job(REPORT_JOB, jobstore="persistent")
    if job is not None and str(job.trigger) == str(trigger):
        if list(job.args) != args:
            job.modify(args=args)
        log.info("weekly report: next run %s (kept from the job store)", job.next_run_time)
        return
    scheduler.add_job(send_last_week, trigger, args=args, id=REPORT_JOB, jobstore="persistent",
                      replace_existing=True, misfire_grace_time=REPORT_MISFIRE_GRACE_S,
                      coalesce=True, max_instances=1)
    log.info("weekly report scheduled: %r (%s) to %s", config.schedule, config.timezone,
             ", ".join(config.to))


def run_scheduler(data: DataDir, *, interval_s: float, pricing: Path | None,
                  settings: Settings, stop: threading.Event,
                  settings_path: Path | None = None, nice: int = 0) -> None:
    """Run the analytics every ``interval_s`` and the weekly report on its schedule until
    ``stop``, ``nice`` steps below the processes beside it (the collector, the dashboard)."""
    config = load_report_config(settings_path)  # checked before anything starts
    load_pricing(pricing)  # checked now, not at the first run
    # Before any thread starts, so DuckDB's and the kernel's threads inherit it: the analytics
    # are batch work and yield the CPU to the collector's acknowledgements and to readers.
    os.nice(nice)
    lock = data.ensure().scheduler_lock().acquire(
        hint="one scheduler per data directory (it runs the analytics and sends the report)")
    scheduler = build_scheduler(data)
    scheduler.add_job(_job, "interval", seconds=interval_s, args=(data, pricing, settings),
                      id="analytics", replace_existing=True,
                      next_run_time=datetime.now(scheduler.timezone))
    scheduler.start(paused=True)
    if config.to:
        schedule_report(scheduler, data, settings_path, config)
    else:
        log.info("weekly report off: no recipients ([report] to, or INFERLEDGER_REPORT_TO)")
    scheduler.resume()
    log.info("scheduler: analytics every %.0fs over %s", interval_s, data.root)
    stop.wait()
    scheduler.shutdown(wait=True)
    lock.release()
