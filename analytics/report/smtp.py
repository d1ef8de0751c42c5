"""Handing a message to an SMTP server: STARTTLS, implicit TLS or plain, with login."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from analytics.report.config import Smtp


def _context(s: Smtp) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=s.ca_file)


def send(msg: EmailMessage, s: Smtp) -> None:
    """One attempt; raises smtplib.SMTPException or OSError when it fails."""
    if s.security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s,
                                                context=_context(s))
    else:
        client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
    with client:
        client.ehlo()
        if s.security == "starttls":
            client.starttls(context=_context(s))
            client.ehlo()
        if s.username:
            client.login(s.username, s.password or "")
        client.send_message(msg)
