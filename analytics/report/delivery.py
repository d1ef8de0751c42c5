"""Delivering a week's report exactly once per recipient list, with a send log in the store.

``<data>/reports/send_log.jsonl`` is append-only; each line is one state of one delivery,
keyed by week and recipients: ``claimed`` (written and fsynced before the first SMTP
attempt), then ``sent`` or ``failed``. Under an exclusive lock a delivery whose latest state
is ``sent`` is never repeated, and one that is ``claimed`` without an outcome — the process
died while sending, so the mail may or may not have gone — is not repeated either: it is
reported as in doubt, and ``inferledger report send --force`` resends. A delivery that
``failed`` (every retry) is retried on the next attempt. Every attempt uses the same
Message-ID, so even a forced resend can be recognised as the same report.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import smtplib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

from analytics.report import smtp
from analytics.report.config import ReportConfig
from inferledger.errors import UserError
from inferledger.results.published import delivery_states
from inferledger.store import DataDir

log = logging.getLogger("inferledger.report")


def delivery_key(week: str, recipients: list[str] | tuple[str, ...]) -> str:
    return f"{week}|{','.join(sorted(recipients))}"


@dataclass(frozen=True)
class Delivery:
    state: str  # sent, failed, already_sent, in_doubt
    key: str
    attempts: int = 0
    error: str | None = None


@contextmanager
def _locked(data: DataDir) -> Iterator[None]:
    path = data.send_log
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _append(data: DataDir, entry: dict) -> None:
    line = json.dumps({**entry, "at": datetime.now(UTC).isoformat()}) + "\n"
    with open(data.send_log, "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def deliver(data: DataDir, week: str, config: ReportConfig,
            build: Callable[[list[str]], EmailMessage], *, to: list[str] | None = None,
            force: bool = False, sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """Send the week's report to ``to`` (default: the configured recipients) unless it was
    sent already; retry failures with exponential back-off."""
    recipients = sorted(to or config.to)
    if not recipients:
        raise UserError("no recipients: set [report] to = [...] or INFERLEDGER_REPORT_TO")
    key = delivery_key(week, recipients)
    with _locked(data):
        last = delivery_states(data).get(key)
        if last and not force and last["state"] == "sent":
            log.info("report %s already sent to %s at %s", week, ", ".join(recipients),
                     last["at"])
            return Delivery("already_sent", key)
        if last and not force and last["state"] == "claimed":
            log.warning("report %s to %s is in doubt: a send started at %s never recorded its "
                        "outcome (the process stopped). Not resending; `inferledger report "
                        "send --week %s --force` resends.", week, ", ".join(recipients),
                        last["at"], week)
            return Delivery("in_doubt", key)
        msg = build(recipients)
        _append(data, {"key": key, "week": week, "to": recipients, "state": "claimed",
                       "message_id": msg["Message-ID"]})
        error = None
        for attempt in range(1, config.retries + 1):
            try:
                smtp.send(msg, config.smtp)
            except (smtplib.SMTPException, OSError) as e:
                error = f"{type(e).__name__}: {e}"
                log.warning("report %s: SMTP attempt %d/%d failed: %s", week, attempt,
                            config.retries, error)
                if attempt < config.retries:
                    sleep(config.backoff_s * 2 ** (attempt - 1))
                continue
            _append(data, {"key": key, "week": week, "to": recipients, "state": "sent",
                           "attempts": attempt, "message_id": msg["Message-ID"]})
            log.info("report %s sent to %s (attempt %d)", week, ", ".join(recipients), attempt)
            return Delivery("sent", key, attempt)
        _append(data, {"key": key, "week": week, "to": recipients, "state": "failed",
                       "attempts": config.retries, "error": error})
        log.error("report %s to %s FAILED after %d attempts: %s", week, ", ".join(recipients),
                  config.retries, error)
        return Delivery("failed", key, config.retries, error)
