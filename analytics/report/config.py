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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from inferledger.config import (
    Kind,
    SettingError,
    check,
    choice,
    integer,
    number,
    read_field,
    read_toml,
    resolve,
    table_of,
    text,
)

SECURITY = ("starttls", "tls", "none")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class ReportConfigError(SettingError):
    """A ``[report]`` setting or an ``INFERLEDGER_REPORT_*`` / ``_SMTP_*`` variable is bad."""


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


def _email(v: object) -> str:
    if not isinstance(v, str) or "@" not in v:
        raise ValueError(v)
    return v


_EMAIL = Kind("an e-mail address", _email)


def _recipients(value: object, name: str) -> tuple[str, ...]:
    if isinstance(value, str):  # the environment's comma list
        value = [a.strip() for a in value.split(",") if a.strip()]
    if not isinstance(value, list):
        raise ReportConfigError(f"{name} = {value!r} is not allowed: expected a list of "
                                "e-mail addresses")
    return tuple(check(_EMAIL, a, name) for a in value)


def _zone(v: object) -> str:
    if not isinstance(v, str):
        raise TypeError(v)
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(v) from err
    return v


def _cron(v: object) -> str:
    if not isinstance(v, str) or len(v.split()) != 5:
        raise ValueError(v)
    return v


_ZONE = Kind("an IANA time zone name such as Europe/Berlin", _zone)
_CRON = Kind("five cron fields: minute hour day month day_of_week", _cron)


def load_report_config(path: str | Path | None = None,
                       env: dict[str, str] | None = None) -> ReportConfig:
    """The ``[report]`` settings: environment over file over default, each value checked; a
    bad one is a :class:`ReportConfigError` naming the variable or field."""
    e = os.environ if env is None else env
    try:
        return _load(path, e)
    except SettingError as err:
        raise ReportConfigError(str(err)) from None


def _load(path: str | Path | None, e: Mapping[str, str]) -> ReportConfig:
    table: dict[str, Any] = {}
    if path is not None:
        table = table_of(read_toml(path, "settings file"), "report", str(path))
    where = f"{path} [report]"
    smtp_t = table_of(table, "smtp", where)
    swhere = f"{path} [report.smtp]"
    if "password" in smtp_t:
        raise ReportConfigError(f"{swhere} password must not be in a file; "
                                "set INFERLEDGER_SMTP_PASSWORD")
    if e.get("INFERLEDGER_REPORT_TO", "") != "":
        to = _recipients(e["INFERLEDGER_REPORT_TO"], "INFERLEDGER_REPORT_TO")
    else:
        to = _recipients(table.get("to", []), f"{where} to")
    security = resolve(choice(*SECURITY), env=e, var="INFERLEDGER_SMTP_SECURITY",
                       table=smtp_t, key="security", where=swhere, default="starttls")

    def setting(kind: Kind, var: str, t: Mapping[str, Any], key: str, w: str,
                default: object) -> Any:
        return resolve(kind, env=e, var=var, table=t, key=key, where=w, default=default)

    smtp = Smtp(host=setting(text(), "INFERLEDGER_SMTP_HOST", smtp_t, "host", swhere,
                             "localhost"),
                port=setting(integer(1, 65535), "INFERLEDGER_SMTP_PORT", smtp_t, "port", swhere,
                             DEFAULT_PORTS[security]),
                security=security,
                username=setting(text(), "INFERLEDGER_SMTP_USERNAME", smtp_t, "username",
                                 swhere, None),
                password=e.get("INFERLEDGER_SMTP_PASSWORD") or None,
                timeout_s=read_field(smtp_t, "timeout_s", number(0, above=True), swhere, 30.0),
                ca_file=read_field(smtp_t, "ca_file", text(), swhere, None))
    return ReportConfig(
        to=to,
        sender=setting(_EMAIL, "INFERLEDGER_REPORT_FROM", table, "from", where,
                       "inferledger@localhost"),
        timezone=read_field(table, "timezone", _ZONE, where, "UTC"),
        schedule=read_field(table, "schedule", _CRON, where, "0 8 * * mon"),
        smtp=smtp,
        retries=read_field(table, "retries", integer(0, 100), where, 4),
        backoff_s=read_field(table, "backoff_s", number(0), where, 30.0))
