"""The weekly report against a real SMTP server (aiosmtpd): STARTTLS with login, implicit TLS,
a server that fails then recovers, exactly-once delivery, and the scheduler's persistent job
across restarts and a missed Monday. Received messages are parsed and checked against the
store."""

from __future__ import annotations

import email
import io
import shutil
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email import policy

import pandas as pd
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from analytics.report.config import ReportConfig, ReportConfigError, Smtp, load_report_config
from analytics.report.week import Week
from analytics.report.weekly import send
from analytics.scheduler import REPORT_JOB, build_scheduler, job_store_url, schedule_report
from inferledger.results.published import delivery_states, read_send_log
from inferledger.store import DataDir
from tests.builders import stored
from tests.ports import free_block

WEEK = "2026-W48"  # the demo store's day (25 Nov 2026) is in it
PASSWORD = "s3cret-pa55"


class Inbox:
    """An aiosmtpd handler that keeps what it accepts and can refuse the first N messages."""

    def __init__(self, fail_first: int = 0) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.fail_first = fail_first
        self.attempts = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return "451 4.3.0 try again later"
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def _auth(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx, str(d / "ca.pem")


def _server(inbox: Inbox, **kwargs) -> tuple[Controller, int]:
    port = free_block(1)
    c = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    c.start()
    return c, port


def _config(port: int, security: str = "none", **smtp) -> ReportConfig:
    return ReportConfig(to=("finops@example.com", "cto@example.com"),
                        sender="reports@inferledger.example",
                        smtp=Smtp(host="127.0.0.1", port=port, security=security, timeout_s=10,
                                  **smtp), retries=4, backoff_s=0.01)


@pytest.fixture
def store(demo_store, tmp_path) -> DataDir:
    """A private copy of the demo store: each test has its own send log."""
    root = tmp_path / "data"
    shutil.copytree(demo_store.root, root)
    return DataDir.at(root)


def _parts(msg: email.message.EmailMessage) -> dict[str, list]:
    out: dict[str, list] = {}
    for part in msg.walk():
        out.setdefault(part.get_content_type(), []).append(part)
    return out


def test_weeks_are_iso_weeks_in_the_report_time_zone() -> None:
    w = Week.parse("2026-W47", "Europe/Berlin")
    assert w.start.isoformat() == "2026-11-16T00:00:00+01:00"
    assert w.end - w.start == timedelta(days=7) and w.previous().label == "2026-W46"
    assert Week.parse("2027-W01").previous().label == "2026-W53"
    monday_8am = datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert Week.last_complete(monday_8am).label == "2026-W47"
    assert Week.last_complete(monday_8am + timedelta(days=2)).label == "2026-W47"  # late run
    for bad in ("2026-47", "2026-W54", "W47"):
        with pytest.raises(ValueError, match=r"ISO week|2026-W54"):
            Week.parse(bad)


def test_config_keeps_secrets_out_of_files(tmp_path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[report]\nto = ["a@x.io"]\n[report.smtp]\nhost = "mail"\n'
                    'password = "oops"\n')
    with pytest.raises(ReportConfigError, match="must not be in a file"):
        load_report_config(path)
    path.write_text('[report]\nto = ["a@x.io"]\ntimezone = "Europe/Paris"\n'
                    '[report.smtp]\nhost = "mail"\nsecurity = "tls"\nusername = "u"\n')
    c = load_report_config(path, env={"INFERLEDGER_SMTP_PASSWORD": PASSWORD})
    assert (c.smtp.host, c.smtp.port, c.smtp.security, c.smtp.password) == (
        "mail", 465, "tls", PASSWORD)
    assert PASSWORD not in repr(c)
    with pytest.raises(ReportConfigError, match="IANA"):
        path.write_text('[report]\ntimezone = "Mars/Olympus"\n')
        load_report_config(path)


def test_report_over_starttls_with_login_matches_the_store(store, tls, caplog) -> None:
    ctx, ca = tls
    inbox = Inbox()
    server, port = _server(inbox, tls_context=ctx, require_starttls=True,
                           authenticator=_auth, auth_required=True)
    try:
        config = _config(port, "starttls", username="reports", password=PASSWORD, ca_file=ca)
        outcome = send(store, Week.parse(WEEK), config)
    finally:
        server.stop()
    assert outcome.state == "sent" and outcome.attempts == 1
    [msg] = inbox.messages
    assert msg["Subject"] == f"[simulated] InferLedger weekly report {WEEK}"
    assert msg["Message-ID"].startswith(f"<inferledger-report-{WEEK}-")
    parts = _parts(msg)
    text = parts["text/plain"][0].get_content()
    html = parts["text/html"][0].get_content()
    [(requests, cost, spend)] = stored(store, f"""
        SELECT (SELECT count(*) FROM request_costs WHERE started_at >= '{WEEK_START}'
                AND started_at < '{WEEK_END}'),
               (SELECT sum(cost_usd) FROM request_costs WHERE started_at >= '{WEEK_START}'
                AND started_at < '{WEEK_END}'),
               (SELECT sum(cost_usd) FROM gpu_time WHERE hour >= '{WEEK_START}'
                AND hour < '{WEEK_END}')""")
    assert f"{requests:,}" in text and f"{requests:,}" in html
    assert f"${spend:,.2f}" in text and "Simulated data" in text and "Simulated data" in html
    assert "Top opportunities" in text
    # The agent's steps and the retries make answers of several requests: cost per answer
    # leads, from the same answers table
    [(answers, completed)] = stored(store, f"""
        SELECT count(*), count_if(outcome = 'completed') FROM answer_costs
        WHERE started_at >= '{WEEK_START}' AND started_at < '{WEEK_END}'""")
    assert answers < requests
    assert f"{answers:,} answers ({completed:,} completed)" in text
    assert "Cost per completed answer" in text and "Cost per completed answer" in html
    assert text.index("Cost per completed answer") < text.index("Cost per response")
    # Charts: inline PNGs, each referenced by the HTML through its Content-ID.
    images = parts["image/png"]
    assert len(images) == 2
    for img in images:
        assert img.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"cid:{img['Content-ID'][1:-1]}" in html
    # The CSV attachment: per model and per tenant, each adding up to the week's cost.
    [attachment] = parts["text/csv"]
    assert attachment.get_filename() == f"inferledger-costs-{WEEK}.csv"
    table = pd.read_csv(io.StringIO(attachment.get_content()))
    for dim in ("model", "tenant"):
        assert table[table["dimension"] == dim]["cost_usd"].sum() == pytest.approx(cost)
    assert PASSWORD not in caplog.text and PASSWORD not in store.send_log.read_text()


WEEK_START, WEEK_END = "2026-11-23 00:00:00+00", "2026-11-30 00:00:00+00"


def test_report_over_implicit_tls(store, tls) -> None:
    ctx, ca = tls
    inbox = Inbox()
    server, port = _server(inbox, ssl_context=ctx)
    try:
        outcome = send(store, Week.parse(WEEK), _config(port, "tls", ca_file=ca))
    finally:
        server.stop()
    assert outcome.state == "sent" and len(inbox.messages) == 1


def test_a_failing_server_is_retried_and_a_dead_one_recorded(store) -> None:
    inbox = Inbox(fail_first=2)
    server, port = _server(inbox)
    try:
        outcome = send(store, Week.parse(WEEK), _config(port))
        assert (outcome.state, outcome.attempts, len(inbox.messages)) == ("sent", 3, 1)
        dead = Inbox(fail_first=1000)
        server.stop()
        server, port = _server(dead)
        outcome = send(store, Week.parse("2026-W47"), _config(port))
    finally:
        server.stop()
    assert outcome.state == "failed" and "451" in outcome.error
    states = {e["week"]: e["state"] for e in delivery_states(store).values()}
    assert states == {WEEK: "sent", "2026-W47": "failed"}


def test_exactly_once_even_after_a_crash_mid_send(store) -> None:
    inbox = Inbox()
    server, port = _server(inbox)
    try:
        config = _config(port)
        assert send(store, Week.parse(WEEK), config).state == "sent"
        assert send(store, Week.parse(WEEK), config).state == "already_sent"
        # Other recipients are another delivery.
        assert send(store, Week.parse(WEEK), config, to=["ops@example.com"]).state == "sent"
        # A process that died after claiming a send, before recording its outcome:
        log = store.send_log
        log.write_text(log.read_text() + '{"key": "2026-W47|cto@example.com,finops@example'
                       '.com", "week": "2026-W47", "state": "claimed", "at": "x"}\n'
                       '{"torn line')
        assert send(store, Week.parse("2026-W47"), config).state == "in_doubt"
        assert len(inbox.messages) == 2
        assert send(store, Week.parse("2026-W47"), config, force=True).state == "sent"
    finally:
        server.stop()
    assert len(inbox.messages) == 3
    assert inbox.messages[0]["Message-ID"] != inbox.messages[1]["Message-ID"]


def test_empty_week_is_a_short_honest_report(store, tmp_path) -> None:
    out = tmp_path / "w40.txt"
    run = subprocess.run([sys.executable, "-m", "commands", "report", "preview", "--data",
                          str(store.root), "--week", "2026-W40", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "no data that week" in run.stdout
    assert "No responses and no GPU time were recorded this week." in out.read_text()
    bad = subprocess.run([sys.executable, "-m", "commands", "report", "send", "--data",
                          str(store.root), "--week", "2026-47"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "not an ISO week" in bad.stderr


def _settings_file(tmp_path, port: int):
    path = tmp_path / "settings.toml"
    path.write_text('[report]\nto = ["finops@example.com"]\nfrom = "r@inferledger.example"\n'
                    'schedule = "0 8 * * mon"\nbackoff_s = 0.01\n'
                    f'[report.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n')
    return path


def _wait(cond, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def _overdue(data: DataDir, when: datetime) -> None:
    """Set the stored report job's next run time, as if the scheduler had been down then."""
    jobs = SQLAlchemyJobStore(url=job_store_url(data))
    jobs.start(BackgroundScheduler(), "persistent")
    job = jobs.lookup_job(REPORT_JOB)
    job.next_run_time = when
    jobs.update_job(job)
    jobs.shutdown()


def test_scheduler_restarts_keep_the_job_and_a_missed_monday_sends_once(store, tmp_path) -> None:
    inbox = Inbox()
    server, port = _server(inbox)
    settings = _settings_file(tmp_path, port)
    config = load_report_config(settings)
    try:
        s = build_scheduler(store)
        s.start(paused=True)
        schedule_report(s, store, settings, config)
        planned = s.get_job(REPORT_JOB).next_run_time
        assert planned.weekday() == 0 and planned.hour == 8 and planned > datetime.now(UTC)
        s.shutdown()
        # Restarted mid-week: the stored job and its next run time are kept, nothing runs.
        s = build_scheduler(store)
        s.start(paused=True)
        schedule_report(s, store, settings, config)
        assert s.get_job(REPORT_JOB).next_run_time == planned
        s.shutdown()
        # The scheduler was down over Monday 08:00: its stored run is two days overdue.
        _overdue(store, datetime.now(UTC) - timedelta(days=2))
        s = build_scheduler(store)
        s.start(paused=True)
        schedule_report(s, store, settings, config)
        s.resume()
        assert _wait(lambda: len(inbox.messages) == 1), "the missed Monday was not sent"
        assert _wait(lambda: s.get_job(REPORT_JOB).next_run_time > datetime.now(UTC))
        s.shutdown()
        # Another restart, and the job run by hand: the send log holds it to once.
        s = build_scheduler(store)
        s.start()
        s.get_job(REPORT_JOB).modify(next_run_time=datetime.now(UTC))
        assert _wait(lambda: s.get_job(REPORT_JOB).next_run_time > datetime.now(UTC))
        s.shutdown()
    finally:
        server.stop()
    assert len(inbox.messages) == 1
    last_week = Week.last_complete(datetime.now(UTC)).label
    assert [e["state"] for e in read_send_log(store)] == ["claimed", "sent"]
    assert inbox.messages[0]["Subject"].endswith(last_week)


def test_a_failed_delivery_shows_on_the_dashboard(store, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.test_dashboard import APP

    dead = Inbox(fail_first=1000)
    server, port = _server(dead)
    try:
        assert send(store, Week.parse(WEEK), _config(port)).state == "failed"
    finally:
        server.stop()
    monkeypatch.setenv("INFERLEDGER_DATA", str(store.root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("views/settings.py").run()
    assert not at.exception
    assert any(WEEK in e.value and "failed" in e.value for e in at.error)
    assert list(at.dataframe[-1].value["state"]) == ["failed"]
