"""The report's entry points: preview to a file, send now, and the scheduled weekly send."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from analytics.report import render
from analytics.report.config import ReportConfig, load_report_config
from analytics.report.delivery import Delivery, deliver
from analytics.report.figures import WeeklyFigures, weekly_figures
from analytics.report.week import Week
from inferledger.store import DataDir, connect_readonly

log = logging.getLogger("inferledger.report")


def figures(data: DataDir, week: Week, tz: str) -> WeeklyFigures:
    con = connect_readonly(data)
    try:
        return weekly_figures(con, week, tz)
    finally:
        con.close()


def preview(data: DataDir, week: Week, out: Path, config: ReportConfig) -> WeeklyFigures:
    """Write the HTML (charts inline as data: URIs) or, for ``.eml``, the whole message."""
    f = figures(data, week, config.timezone)
    if out.suffix == ".eml":
        out.write_bytes(bytes(render.email(f, config.sender, list(config.to) or
                                           ["preview@localhost"])))
    elif out.suffix == ".txt":
        out.write_text(render.text(f))
    else:
        out.write_text(render.preview_html(f))
    return f


def send(data: DataDir, week: Week, config: ReportConfig, *, to: list[str] | None = None,
         force: bool = False) -> Delivery:
    f = figures(data, week, config.timezone)
    return deliver(data, week.label, config,
                   lambda recipients: render.email(f, config.sender, recipients),
                   to=to, force=force)


def send_last_week(data_root: str, settings_path: str | None) -> str:
    """The scheduled job (arguments are plain strings: APScheduler persists them). It sends
    the last complete week, so a run delayed past Monday still sends that week."""
    config = load_report_config(settings_path)
    week = Week.last_complete(datetime.now(UTC), config.timezone)
    outcome = send(DataDir.at(data_root), week, config)
    if outcome.state == "failed":
        raise RuntimeError(f"weekly report {week.label} failed: {outcome.error}")
    return outcome.state
