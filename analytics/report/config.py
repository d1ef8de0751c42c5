"""Report settings: the ``[report]`` table of the settings file, then environment variables.

Secrets never live in the file: the SMTP password comes from ``INFERLEDGER_SMTP_PASSWORD``
only, and nothing here logs it.

===============================  =======================================================
``[report] to``                  recipients (list); env ``INFERLEDGER_REPORT_TO`` (comma list)
``[report] from``                sender address; env ``INFERLEDGER_REPORT_FROM``
``[report] timezone``            weeks and the schedule in this zone (default ``UTC``)
``[report] schedule``            cron fields ``minute hour day month day_of_week``
                                 (default ``0 8 * * mon``: Monday 08:00)
``[report.smtp] host, port``     env ``INFERLEDGER_SMTP_HOST``, ``INFERLEDGER_SMTP_PORT``
``[report.smtp] security``       ``starttls`` (default, port 587), ``tls`` (implicit, 465),
                                 ``none`` (a local relay or a development mail catcher);
                                 env ``INFERLEDGER_SMTP_SECURITY``
``[report.smtp] username``       env ``INFERLEDGER_SMTP_USERNAME``; password: env only
===============================  =======================================================
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SECURITY = ("starttls", "tls", "none")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class ReportConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Smtp:
    host: str = "localhost"
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # from the environment only
    timeout_s: float = 30.0
    ca_file: str | None = None  # a private CA for the server's certificate


@dataclass(frozen=True)
class ReportConfig:
    to: tuple[str, ...] = ()
    sender: str = "inferledger@localhost"
    timezone: str = "UTC"
    schedule: str = "0 8 * * mon"
    smtp: Smtp = field(default_factory=Smtp)
    retries: int = 4
    backoff_s: float = 30.0


def load_report_config(path: str | Path | None = None,
                       env: dict[str, str] | None = None) -> ReportConfig:
    e = os.environ if env is None else env
    table: dict[str, Any] = {}
    if path is not None:
        try:
            table = tomllib.loads(Path(path).read_text()).get("report", {})
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ReportConfigError(f"{path}: {err}") from err
    smtp_t = table.get("smtp", {})
    if "password" in smtp_t:
        raise ReportConfigError(f"{path}: [report.smtp] password must not be in a file; "
                                "set INFERLEDGER_SMTP_PASSWORD")
    to = table.get("to", [])
    if "INFERLEDGER_REPORT_TO" in e:
        to = [a.strip() for a in e["INFERLEDGER_REPORT_TO"].split(",") if a.strip()]
    if isinstance(to, str) or any("@" not in str(a) for a in to):
        raise ReportConfigError(f"report recipients {to!r} must be a list of e-mail addresses")
    tz = str(table.get("timezone", "UTC"))
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ReportConfigError(f"report timezone {tz!r} is not an IANA zone name") from err
    schedule = str(table.get("schedule", "0 8 * * mon"))
    if len(schedule.split()) != 5:
        raise ReportConfigError(f"report schedule {schedule!r} is not five cron fields "
                                "(minute hour day month day_of_week)")
    security = e.get("INFERLEDGER_SMTP_SECURITY") or str(smtp_t.get("security", "starttls"))
    if security not in SECURITY:
        raise ReportConfigError(f"[report.smtp] security {security!r} is not one of {SECURITY}")
    port = int(e.get("INFERLEDGER_SMTP_PORT") or smtp_t.get("port") or DEFAULT_PORTS[security])
    smtp = Smtp(host=e.get("INFERLEDGER_SMTP_HOST") or str(smtp_t.get("host", "localhost")),
                port=port, security=security,
                username=e.get("INFERLEDGER_SMTP_USERNAME") or smtp_t.get("username"),
                password=e.get("INFERLEDGER_SMTP_PASSWORD"),
                timeout_s=float(smtp_t.get("timeout_s", 30.0)), ca_file=smtp_t.get("ca_file"))
    return ReportConfig(to=tuple(str(a) for a in to),
                        sender=e.get("INFERLEDGER_REPORT_FROM") or str(
                            table.get("from", "inferledger@localhost")),
                        timezone=tz, schedule=schedule, smtp=smtp,
                        retries=int(table.get("retries", 4)),
                        backoff_s=float(table.get("backoff_s", 30.0)))
