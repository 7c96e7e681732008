"""The SMTP test server itself behaves like a real one (so tests built on it can fail)."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]


def test_plain_accepts_and_records(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: hi\r\n\r\nhello\r\n")
    assert smtp_sink.recipients() == ["b@example.org"]
    assert "hello" in smtp_sink.messages[0].text


def test_refusals_and_auth_and_starttls(tmp_path: Path) -> None:
    sink = SmtpSink(tls="starttls", credentials=("u", "pw"), cert_dir=tmp_path).start()
    try:
        sink.behaviour.refuse["bad@example.org"] = "550 5.1.1 no such user"
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.starttls(context=sink.client_context())
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("u", "wrong")
            client.login("u", "pw")
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("a@example.org", ["bad@example.org"], b"Subject: x\r\n\r\nx\r\n")
    finally:
        sink.stop()


def test_implicit_tls(tmp_path: Path) -> None:
    sink = SmtpSink(tls="ssl", cert_dir=tmp_path).start()
    try:
        with smtplib.SMTP_SSL(sink.host, sink.port, timeout=5, context=sink.client_context()) as client:
            client.sendmail("a@example.org", ["c@example.org"], b"Subject: x\r\n\r\nx\r\n")
        assert sink.recipients() == ["c@example.org"]
    finally:
        sink.stop()


def test_down_and_back(smtp_sink: SmtpSink) -> None:
    smtp_sink.stop()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=2)
    smtp_sink.start()
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
        assert client.noop()[0] == 250
