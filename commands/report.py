"""``inferledger report``: the weekly report, previewed or sent by hand for any ISO week."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from commands.args import data_arg

if TYPE_CHECKING:
    from analytics.report.config import ReportConfig
    from analytics.report.week import Week


def _week_args(p: argparse.ArgumentParser) -> None:
    data_arg(p)
    p.add_argument("--week", metavar="YYYY-Www",
                   help="ISO week, e.g. 2026-W47 (default: the last complete week)")
    p.add_argument("--config", type=Path, metavar="FILE", help="settings TOML ([report])")


def _config_and_week(args: argparse.Namespace) -> tuple[ReportConfig, Week]:
    from analytics.report.config import load_report_config
    from analytics.report.week import Week

    config = load_report_config(args.config)
    if args.week is None:
        return config, Week.last_complete(datetime.now(UTC), config.timezone)
    return config, Week.parse(args.week, config.timezone)


def cmd_preview(args: argparse.Namespace) -> int:
    from analytics.report.weekly import preview
    from inferledger.store import DataDir

    config, week = _config_and_week(args)
    f = preview(DataDir.at(args.data), week, args.out, config)
    print(f"report {week} written to {args.out}"
          + (" (no data that week)" if f.empty else ""))
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from analytics.report.weekly import send
    from inferledger.store import DataDir

    config, week = _config_and_week(args)
    outcome = send(DataDir.at(args.data), week, config, to=args.to or None, force=args.force)
    print(f"report {week.label}: {outcome.state}"
          + (f" after {outcome.attempts} attempt(s)" if outcome.attempts else "")
          + (f": {outcome.error}" if outcome.error else ""))
    return 0 if outcome.state in ("sent", "already_sent") else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser("report", help="the weekly report: preview or send one week",
                        description="The weekly report the scheduler e-mails on Mondays, for "
                        "any ISO week, by hand. SMTP and recipients come from the settings "
                        "file's [report] table and INFERLEDGER_SMTP_* / INFERLEDGER_REPORT_* "
                        "environment variables (the password only from the environment).")
    rp_sub = rp.add_subparsers(dest="report_command", required=True, metavar="ACTION")
    pv = rp_sub.add_parser("preview", help="write one week's report to a file",
                           description="Writes the report as HTML (charts inline), .txt "
                           "(the plain-text part) or .eml (the whole e-mail, attachments "
                           "included), by the file's extension. Nothing is sent.")
    _week_args(pv)
    pv.add_argument("--out", type=Path, required=True, metavar="FILE",
                    help="report.html, report.txt or report.eml")
    pv.set_defaults(func=cmd_preview)
    sd = rp_sub.add_parser("send", help="e-mail one week's report now, once",
                           description="Sends the week's report unless the send log says it "
                           "went to these recipients already (or may have: in doubt); "
                           "--force sends anyway. Exit status 1 if every SMTP attempt failed.")
    _week_args(sd)
    sd.add_argument("--to", action="append", default=[], metavar="ADDRESS",
                    help="recipient (repeat; default: the configured ones)")
    sd.add_argument("--force", action="store_true", help="send even if the log says sent")
    sd.set_defaults(func=cmd_send)
