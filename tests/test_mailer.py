"""SMTP transport against a real aiosmtpd server: plain, STARTTLS, implicit TLS, AUTH, refusals, drops, outages."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.services.notices.mailer import (
    Outcome,
    SmtpConnectionError,
    SmtpTransport,
    build_message,
    check_connection,
    envelope_address,
    message_id_for,
    send_test_message,
)
from desktop.services.notices.templates import RenderedNotice
from tests.outbox_support import FROM, sink_settings
from tests.smtp_sink import SmtpSink, free_port, smtp_sink

__all__ = ["smtp_sink"]

USER, PASSWORD = "callslip", "s3cret-Pa55"


def rendered(to: str = "ada@example.org", *, cc: tuple[str, ...] = (), html: str = "") -> RenderedNotice:
    return RenderedNotice(from_name="Demo Library ILL", from_address=FROM, to=(to,), cc=cc, bcc=(),
                          subject="Your interlibrary loan has arrived: Zoë's atlas", body_text="Dear Zoë,\nIt is here.\n",
                          body_html=html)  # fmt: skip


@pytest.fixture
def starttls_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    sink = SmtpSink(tls="starttls", credentials=(USER, PASSWORD), cert_dir=tmp_path).start()
    yield sink
    sink.stop()


@pytest.fixture
def ssl_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    # No AUTH here: aiosmtpd does not count implicit TLS as TLS for ``auth_require_tls`` (AUTH over TLS is
    # covered by the STARTTLS sink).
    sink = SmtpSink(tls="ssl", cert_dir=tmp_path).start()
    yield sink
    sink.stop()


def test_message_id_is_deterministic_per_notice() -> None:
    first = message_id_for(42, "arrival:1:Loan Pickup:7", FROM)
    assert first == message_id_for(42, "arrival:1:Loan Pickup:7", FROM)
    assert first.startswith("<callslip.notice.42.") and first.endswith("@library.example.org>")
    assert first != message_id_for(43, "arrival:1:Loan Pickup:7", FROM)
    assert first != message_id_for(42, "arrival:1:Loan Pickup:8", FROM)
    assert message_id_for(1, "k", "").endswith("@callslip.invalid>")


def test_plain_send_text_and_html(smtp_sink: SmtpSink) -> None:
    settings = sink_settings(smtp_sink)
    mid = message_id_for(7, "k7", FROM)
    out = build_message(rendered(html="<p>Dear Zoë &amp; co</p>"), notice_id=7, message_id=mid, settings=settings)
    with SmtpTransport(settings, None) as transport:
        result = transport.send(out)
    assert result.outcome is Outcome.SENT and result.reply.startswith("250")
    [received] = smtp_sink.messages
    message = received.message
    assert message["Message-ID"] == mid
    assert message["X-Callslip-Notice"] == "7"
    assert message["Subject"] == "Your interlibrary loan has arrived: Zoë's atlas"
    assert received.text.replace("\r\n", "\n") == "Dear Zoë,\nIt is here.\n"  # CRLF on the wire
    assert "Dear Zoë &amp; co" in message.get_body(preferencelist=("html",)).get_content()
    assert received.rcpt_tos == ["ada@example.org"]


def test_one_connection_serves_a_batch(smtp_sink: SmtpSink) -> None:
    settings = sink_settings(smtp_sink)
    with SmtpTransport(settings, None) as transport:
        sock = transport._smtp.sock if transport._smtp else None
        for i in range(5):
            out = build_message(rendered(f"p{i}@example.org"), notice_id=i, message_id=f"<m{i}@x>", settings=settings)
            assert transport.send(out).outcome is Outcome.SENT
            assert transport._smtp is not None and transport._smtp.sock is sock
    assert len(smtp_sink.messages) == 5


def test_hooks_run_while_the_server_works_in_order(smtp_sink: SmtpSink) -> None:
    """``waiting`` after each command is written (before its reply is read), ``gate`` before the text."""
    settings = sink_settings(smtp_sink)
    calls: list[str] = []
    smtp_sink.behaviour.before_accepting = lambda _sender: calls.append("server has the text")
    out = build_message(rendered(), notice_id=1, message_id="<m1@x>", settings=settings)
    with SmtpTransport(settings, None) as transport:
        result = transport.send(out, gate=lambda: calls.append("gate") is None, waiting=calls.append)
    assert result.outcome is Outcome.SENT
    assert calls[:4] == ["MAIL", "RCPT", "DATA", "gate"]
    assert sorted(calls[4:]) == [".", "server has the text"]  # the two run at the same time


def test_a_closed_gate_sends_no_text(smtp_sink: SmtpSink) -> None:
    settings = sink_settings(smtp_sink)
    out = build_message(rendered(), notice_id=1, message_id="<m1@x>", settings=settings)
    with SmtpTransport(settings, None) as transport:
        result = transport.send(out, gate=lambda: False)
        assert result.outcome is Outcome.ABORTED and result.connection_lost
        assert transport.send(out).outcome is Outcome.SENT  # reconnects
    assert len(smtp_sink.messages) == 1


def test_starttls_with_auth(starttls_sink: SmtpSink) -> None:
    settings = sink_settings(starttls_sink, smtp_security="starttls", smtp_username=USER)
    report = check_connection(settings, PASSWORD, ssl_context=starttls_sink.client_context())
    assert report.ok, report.message
    assert report.tls and report.tls.startswith("TLS")
    assert report.authenticated is True
    assert not starttls_sink.messages  # checking sends nothing
    out = build_message(rendered(), notice_id=1, message_id="<m1@x>", settings=settings)
    with SmtpTransport(settings, PASSWORD, ssl_context=starttls_sink.client_context()) as transport:
        assert transport.send(out).outcome is Outcome.SENT
    assert len(starttls_sink.messages) == 1


def test_wrong_password_is_reported_without_the_password(starttls_sink: SmtpSink) -> None:
    settings = sink_settings(starttls_sink, smtp_security="starttls", smtp_username=USER)
    report = check_connection(settings, "wrong-Pa55word", ssl_context=starttls_sink.client_context())
    assert not report.ok
    assert report.authenticated is False
    assert "refused the user name or password" in report.message
    assert "wrong-Pa55word" not in report.message


def test_untrusted_certificate_is_refused(starttls_sink: SmtpSink) -> None:
    settings = sink_settings(starttls_sink, smtp_security="starttls", smtp_username=USER)
    report = check_connection(settings, PASSWORD)  # default context: the self-signed cert is not trusted
    assert not report.ok
    assert "TLS failed" in report.message or "certificate" in report.message.lower()


def test_implicit_tls(ssl_sink: SmtpSink) -> None:
    settings = sink_settings(ssl_sink, smtp_security="ssl")
    report = check_connection(settings, None, ssl_context=ssl_sink.client_context())
    assert report.ok and report.tls and report.authenticated is None
    result = send_test_message(settings, None, "staff@example.org", rendered(), ssl_context=ssl_sink.client_context())
    assert result.outcome is Outcome.SENT
    [received] = ssl_sink.messages
    assert received.message["Subject"].startswith("[TEST] ")
    assert received.rcpt_tos == ["staff@example.org"]


def test_starttls_required_but_not_offered(smtp_sink: SmtpSink) -> None:
    report = check_connection(sink_settings(smtp_sink, smtp_security="starttls"), None)
    assert not report.ok and "does not offer STARTTLS" in report.message


def test_auth_required_but_not_configured(starttls_sink: SmtpSink) -> None:
    settings = sink_settings(starttls_sink, smtp_security="starttls")
    out = build_message(rendered(), notice_id=1, message_id="<m1@x>", settings=settings)
    with SmtpTransport(settings, None, ssl_context=starttls_sink.client_context()) as transport:
        result = transport.send(out)
    assert result.outcome is Outcome.PERMANENT and "530" in result.reply
    assert not starttls_sink.messages


@pytest.mark.parametrize(("reply", "outcome"), [("451 4.3.0 try later", Outcome.TEMPORARY),
                                               ("550 5.1.1 no such user", Outcome.PERMANENT)])  # fmt: skip
def test_recipient_refusals_are_classified(smtp_sink: SmtpSink, reply: str, outcome: Outcome) -> None:
    smtp_sink.behaviour.refuse["gone@example.org"] = reply
    settings = sink_settings(smtp_sink)
    with SmtpTransport(settings, None) as transport:
        result = transport.send(build_message(rendered("gone@example.org"), notice_id=1, message_id="<a@x>",
                                              settings=settings))  # fmt: skip
        assert result.outcome is outcome and reply in result.reply
        # The connection stays usable for the rest of the batch.
        ok = transport.send(build_message(rendered("fine@example.org"), notice_id=2, message_id="<b@x>",
                                          settings=settings))  # fmt: skip
    assert ok.outcome is Outcome.SENT
    assert smtp_sink.recipients() == ["fine@example.org"]


def test_partly_refused_recipients_still_count_as_sent(smtp_sink: SmtpSink) -> None:
    smtp_sink.behaviour.refuse["cc@example.org"] = "550 5.1.1 unknown"
    settings = sink_settings(smtp_sink)
    with SmtpTransport(settings, None) as transport:
        result = transport.send(build_message(rendered(cc=("cc@example.org",)), notice_id=1, message_id="<c@x>",
                                              settings=settings))  # fmt: skip
    assert result.outcome is Outcome.SENT
    assert result.refused == {"cc@example.org": "550 5.1.1 unknown"}


def test_data_refusal_is_permanent(smtp_sink: SmtpSink) -> None:
    smtp_sink.behaviour.data_reply = "554 5.7.1 rejected as spam"
    settings = sink_settings(smtp_sink)
    with SmtpTransport(settings, None) as transport:
        result = transport.send(build_message(rendered(), notice_id=1, message_id="<d@x>", settings=settings))
    assert result.outcome is Outcome.PERMANENT and "554" in result.reply


def test_drop_after_data_is_temporary_and_the_transport_reconnects(smtp_sink: SmtpSink) -> None:
    settings = sink_settings(smtp_sink)
    smtp_sink.behaviour.drop_after_data = True
    with SmtpTransport(settings, None) as transport:
        dropped = transport.send(build_message(rendered(), notice_id=1, message_id="<e@x>", settings=settings))
        assert dropped.outcome is Outcome.TEMPORARY and dropped.connection_lost
        smtp_sink.behaviour.drop_after_data = False
        again = transport.send(build_message(rendered(), notice_id=1, message_id="<e@x>", settings=settings))
    assert again.outcome is Outcome.SENT
    assert [m.message["Message-ID"] for m in smtp_sink.messages] == ["<e@x>"]


def test_server_down_then_back(smtp_sink: SmtpSink) -> None:
    settings = sink_settings(smtp_sink)
    smtp_sink.stop()
    report = check_connection(settings, None)
    assert not report.ok and "connection refused" in report.message
    with pytest.raises(SmtpConnectionError) as info:
        SmtpTransport(settings, None).open()
    assert info.value.temporary
    smtp_sink.start()
    assert check_connection(settings, None).ok


def test_a_silent_server_times_out(tmp_path: Path) -> None:
    """A server that accepts the connection and never speaks: the timeout ends the wait, nothing hangs."""
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(5)
        with contextlib.suppress(OSError):
            accepted.append(listener.accept()[0])
        done.wait(5)

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        settings = sink_settings(SmtpSink(port=port), smtp_timeout=0.5)
        report = check_connection(settings, None)  # the server never greets: only the 0.5 s timeout ends it
        assert not report.ok and "timed out" in report.message
    finally:
        done.set()
        thread.join()
        for sock in accepted:
            sock.close()
        listener.close()


def test_send_test_message_refuses_a_bad_address(smtp_sink: SmtpSink) -> None:
    with pytest.raises(ValueError):
        send_test_message(sink_settings(smtp_sink), None, "not an address", rendered())


def test_missing_from_address_is_an_error(smtp_sink: SmtpSink) -> None:
    settings = sink_settings(smtp_sink, smtp_from="")
    notice = RenderedNotice("", "", ("a@example.org",), (), (), "s", "b", "")
    with pytest.raises(ValueError, match="no From address"):
        build_message(notice, notice_id=1, message_id="<x@y>", settings=settings)


def test_envelope_addresses_are_bare_and_cannot_inject_commands() -> None:
    assert envelope_address("ada@example.org") == "ada@example.org"
    assert envelope_address(" Ada Lovelace <ada@example.org> ") == "ada@example.org"
    assert envelope_address('"Lovelace, Ada" <ada@example.org>') == "ada@example.org"
    with pytest.raises(ValueError, match="line break"):
        envelope_address("ada@example.org\r\nRCPT TO:<eve@example.org>")
    settings = sink_settings(SmtpSink(), smtp_from=f"Demo Library <{FROM}>")
    message = build_message(rendered("Ada <ada@example.org>", cc=("Bob <bob@example.org>",)), notice_id=1,
                            message_id="<m@x>", settings=settings)  # fmt: skip
    assert (message.sender, message.recipients) == (FROM, ("ada@example.org", "bob@example.org"))
    assert b"To: Ada <ada@example.org>" in message.data  # the header keeps the name


# ------------------------------------------------------------------------------------------ TLS, AUTH, timeouts


def certificate_for(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` only (not for 127.0.0.1): a host-name mismatch when dialled by IP."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "other.pem", folder / "other-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_the_ca_file_setting_trusts_an_internal_ca(starttls_sink: SmtpSink) -> None:
    assert starttls_sink.cafile is not None
    settings = sink_settings(starttls_sink, smtp_security="starttls", smtp_username=USER,
                             smtp_ca_file=str(starttls_sink.cafile))  # fmt: skip
    report = check_connection(settings, PASSWORD)  # no test context: the setting alone makes it trusted
    assert report.ok, report.message


def test_an_untrusted_certificate_and_a_wrong_host_name_get_different_advice(
    starttls_sink: SmtpSink, tmp_path: Path
) -> None:
    settings = sink_settings(starttls_sink, smtp_security="starttls", smtp_username=USER)
    untrusted = check_connection(settings, PASSWORD)
    assert not untrusted.ok and "not trusted" in untrusted.message and "CA certificate file" in untrusted.message
    cert, key = certificate_for(tmp_path / "other", "mail.example.org")
    other = SmtpSink(tls="starttls", credentials=(USER, PASSWORD), cert_dir=tmp_path)
    other._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other._context.load_cert_chain(cert, key)
    other.start()
    try:
        mismatch = check_connection(sink_settings(other, smtp_security="starttls", smtp_username=USER,
                                                  smtp_ca_file=str(cert)), PASSWORD)  # fmt: skip
    finally:
        other.stop()
    assert not mismatch.ok and "not for the server name" in mismatch.message and "not trusted" not in mismatch.message


def test_an_unreadable_ca_file_is_named(starttls_sink: SmtpSink, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    report = check_connection(sink_settings(starttls_sink, smtp_security="starttls", smtp_ca_file=str(missing)), None)
    assert not report.ok and "CA certificate file" in report.message and str(missing) in report.message
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    report = check_connection(sink_settings(starttls_sink, smtp_security="starttls", smtp_ca_file=str(garbage)), None)
    assert not report.ok and "cannot be used" in report.message


def test_a_non_ascii_password_logs_in(tmp_path: Path) -> None:
    password = "Straße-Ünïcødé-密码"
    sink = SmtpSink(tls="starttls", credentials=("bibliothèque", password), cert_dir=tmp_path).start()
    try:
        settings = sink_settings(sink, smtp_security="starttls", smtp_username="bibliothèque")
        report = check_connection(settings, password, ssl_context=sink.client_context())
        assert report.ok and report.authenticated, report.message
        wrong = check_connection(settings, "Straße-wrong", ssl_context=sink.client_context())
        assert not wrong.ok and "refused the user name or password" in wrong.message
        assert "Straße" not in wrong.message
    finally:
        sink.stop()


def test_a_timeout_after_the_final_dot_is_reported_as_a_timeout(smtp_sink: SmtpSink) -> None:
    release = threading.Event()
    smtp_sink.behaviour.before_accepting = lambda sender: release.wait(10) and None  # type: ignore[func-returns-value]
    settings = sink_settings(smtp_sink, smtp_timeout=0.5)
    out = build_message(rendered(), notice_id=9, message_id="<m9@x>", settings=settings)
    transport = SmtpTransport(settings, None)
    try:
        transport.open()
        result = transport.send(out)
    finally:
        release.set()
        transport.close()
    assert result.outcome is Outcome.TEMPORARY and result.connection_lost
    assert "timed out" in result.reply and "reply to the end of the message" in result.reply
    assert "closed the connection" not in result.reply
