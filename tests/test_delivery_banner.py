"""Why notices wait, seen by the desk: the delivery health every System Manager records, and the banner that shows
it in Contact Customers and the request form — for each failure kind, produced by real cycles against the real
aiosmtpd sink, an unused port and a wrong password (pytest-qt, real SQLite file)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.domain.clock import utcnow
from desktop.domain.methods import NotificationMethod
from desktop.domain.statuses import Status
from desktop.services.notices import smtp_backoff
from desktop.services.notices.delivery_health import (
    FRESH_FOR,
    DeliveryHealth,
    Remedy,
    explain,
    make_due_now,
    read_health,
    record_cycle,
)
from desktop.services.notices.delivery_problems import DeliveryProblem
from desktop.services.notices.dispatch import run_cycle
from desktop.ui.context import AppContext
from desktop.ui.notices.delivery_banner import DeliveryBanner
from desktop.ui.requests.contact_customers import ContactCustomersDialog, open_contact_customers
from desktop.ui.requests.request_form import RequestForm
from tests.outbox_support import FROM, add_patron, add_request, move, notices, sink_settings
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]

USER, PASSWORD = "callslip", "s3cret-Pa55"


def arrived(db: Database, **patron: object) -> int:
    request_id = add_request(db, add_patron(db, **patron))  # type: ignore[arg-type]
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    return request_id


def unused_port() -> tuple[socket.socket, int]:
    """A port that is bound (so nobody else takes it) but never accepts: connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------------- the service


def test_each_failure_kind_is_recorded_for_every_workstation(sqlite_db: Database, tmp_path: Path) -> None:
    arrived(sqlite_db)
    arrived(sqlite_db)
    assert read_health(sqlite_db).manager_missing  # two notices wait and no System Manager ever ran

    run_cycle(sqlite_db, Settings(staff_name="t"), worker="desk")
    health = read_health(sqlite_db)
    assert health.problem is DeliveryProblem.NOT_CONFIGURED and health.waiting == 2 and health.worker == "desk"

    sink = SmtpSink(tls="starttls", credentials=(USER, PASSWORD), cert_dir=tmp_path).start()
    try:
        sock, port = unused_port()
        with sock:
            start = utcnow()
            run_cycle(sqlite_db, sink_settings(sink, smtp_port=port, smtp_security="none"), worker="desk", now=start)
            later = start + timedelta(minutes=3)
            run_cycle(sqlite_db, sink_settings(sink, smtp_port=port, smtp_security="none"), worker="desk", now=later)
        health = read_health(sqlite_db, now=later)
        assert health.problem is DeliveryProblem.UNREACHABLE
        # "unreachable since" the first cycle that saw it (its clock starts at ``start``), not the last one
        assert health.since is not None and start <= health.since < later - timedelta(minutes=2)
        assert health.waiting == 2

        settings = sink_settings(sink, smtp_security="starttls", smtp_username=USER)
        run_cycle(sqlite_db, settings, password="wrong", ssl_context=sink.client_context(), worker="desk")
        assert read_health(sqlite_db).problem is DeliveryProblem.AUTH_REFUSED

        run_cycle(sqlite_db, settings, password=PASSWORD, worker="desk")  # the sink's certificate is not trusted
        assert read_health(sqlite_db).problem is DeliveryProblem.TLS_FAILED

        summary = run_cycle(sqlite_db, settings, password=PASSWORD, ssl_context=sink.client_context(), worker="desk")
        assert summary.sent == 2
        health = read_health(sqlite_db)
        assert health.problem is None and not health.blocked and health.waiting == 0 and explain(health) is None
    finally:
        sink.stop()


def test_counts_are_current_not_the_last_cycles(sqlite_db: Database) -> None:
    run_cycle(sqlite_db, Settings(staff_name="t"), worker="server")  # nothing waits yet: a clean verdict
    first = arrived(sqlite_db)
    arrived(sqlite_db)
    health = read_health(sqlite_db)
    assert health.waiting == 2 and health.failed == 0  # queued after the cycle, counted now
    with sqlite_db.write() as session:
        from desktop.db.models import Notification

        notice = session.get(Notification, notices(sqlite_db, request_id=first)[0].id)
        assert notice is not None
        notice.state, notice.last_reply = "failed", "550 5.1.1 mailbox unavailable"
    health = read_health(sqlite_db)
    assert (health.waiting, health.failed) == (1, 1)
    message = explain(health)
    assert message is not None and "1 e-mail notice(s) failed" in message.text and message.remedy is Remedy.NONE


def test_a_server_that_sends_outweighs_a_workstation_without_smtp(sqlite_db: Database) -> None:
    """A workstation without an SMTP server beside a headless System Manager that sends is normal."""
    arrived(sqlite_db)
    now = utcnow()
    record_cycle(sqlite_db, worker="desk-1:11:gui", at=now, problem=DeliveryProblem.NOT_CONFIGURED)
    assert read_health(sqlite_db, now=now).problem is DeliveryProblem.NOT_CONFIGURED
    record_cycle(sqlite_db, worker="server:22", at=now, problem=None)
    assert read_health(sqlite_db, now=now).problem is None
    # An hour later nobody has run: the reason notices wait is that no System Manager runs.
    later = now + FRESH_FOR + timedelta(minutes=1)
    health = read_health(sqlite_db, now=later)
    assert health.manager_missing and health.blocked
    message = explain(health)
    assert message is not None and "no System Manager has run since" in message.text


def test_a_restarted_workstation_speaks_for_its_host(sqlite_db: Database) -> None:
    now = utcnow()
    record_cycle(sqlite_db, worker="desk-1:11:gui", at=now - timedelta(minutes=5), problem=None)
    record_cycle(sqlite_db, worker="desk-1:12:gui", at=now, problem=DeliveryProblem.AUTH_REFUSED)
    assert read_health(sqlite_db, now=now).problem is DeliveryProblem.AUTH_REFUSED


def test_retry_now_makes_backed_off_notices_due(sqlite_db: Database) -> None:
    request_id = arrived(sqlite_db)
    later = utcnow() + timedelta(minutes=30)
    with sqlite_db.write() as session:
        from desktop.db.models import Notification

        notice = session.get(Notification, notices(sqlite_db, request_id=request_id)[0].id)
        assert notice is not None
        notice.state, notice.next_attempt_at = "retrying", later
    smtp_backoff.record_refusal(sqlite_db, "127.0.0.1:25", DeliveryProblem.SERVER_BUSY, "421 busy", utcnow())
    assert make_due_now(sqlite_db) == 1
    assert notices(sqlite_db, request_id=request_id)[0].next_attempt_at < later
    assert smtp_backoff.current(sqlite_db, "127.0.0.1:25") is None  # the next cycle connects at once


# ------------------------------------------------------------------------------------------- the banner


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, settings)
    yield context
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, ContactCustomersDialog | RequestForm):
            widget.close()
    context.shutdown()


def open_form(ctx: AppContext, qtbot: QtBot) -> ContactCustomersDialog:
    form = open_contact_customers(ctx)
    qtbot.addWidget(form)
    qtbot.waitUntil(lambda: form.delivery_banner.health is not None and not ctx.runner.busy, timeout=10_000)
    return form


def banner_after(form: ContactCustomersDialog, qtbot: QtBot) -> DeliveryBanner:
    """The form's banner after it read the health again (as it does after every System Manager cycle)."""
    banner = form.delivery_banner
    with qtbot.waitSignal(banner.healthChanged, timeout=10_000):
        form.ctx.changed.emit("delivery")
    return banner


def test_banner_for_each_failure_kind(ctx: AppContext, sqlite_db: Database, qtbot: QtBot, tmp_path: Path) -> None:
    arrived(sqlite_db)
    form = open_form(ctx, qtbot)
    banner = form.delivery_banner
    assert banner.isVisible() and "no System Manager has run yet" in banner.text()
    assert banner.settings_button.isVisible() and not banner.retry_button.isVisible()

    run_cycle(sqlite_db, Settings(staff_name="t"), worker="desk")
    banner = banner_after(form, qtbot)
    assert "no e-mail (SMTP) server is set up" in banner.text() and "1 notice(s) waiting" in banner.text()
    assert banner.settings_button.isVisible() and not banner.retry_button.isVisible()

    sink = SmtpSink(tls="starttls", credentials=(USER, PASSWORD), cert_dir=tmp_path).start()
    try:
        sock, port = unused_port()
        with sock:
            run_cycle(sqlite_db, sink_settings(sink, smtp_port=port, smtp_security="none"), worker="desk")
        banner = banner_after(form, qtbot)
        assert "unreachable since" in banner.text() and "Retry now" in banner.text()
        assert banner.retry_button.isVisible() and not banner.settings_button.isVisible()
        # The e-mail row says it too, in its own words.
        model = form.models[NotificationMethod.EMAIL]
        qtbot.waitUntil(lambda: "not sent: server unreachable since" in model.index(0, 3).data(), timeout=10_000)

        settings = sink_settings(sink, smtp_security="starttls", smtp_username=USER)
        run_cycle(sqlite_db, settings, password="wrong", ssl_context=sink.client_context(), worker="desk")
        banner = banner_after(form, qtbot)
        assert "refused the user name or password" in banner.text() and banner.settings_button.isVisible()

        run_cycle(sqlite_db, settings, password=PASSWORD, worker="desk")
        banner = banner_after(form, qtbot)
        assert "No secure (TLS) connection" in banner.text() and banner.settings_button.isVisible()

        run_cycle(sqlite_db, settings, password=PASSWORD, ssl_context=sink.client_context(), worker="desk")
        banner = banner_after(form, qtbot)
        assert not banner.isVisible() and banner.text() == ""
    finally:
        sink.stop()


def test_banner_for_a_missing_from_address_and_a_back_off(ctx: AppContext, sqlite_db: Database, qtbot: QtBot) -> None:
    """Recorded as the System Manager records them (the From check and the back-off are other cycles' work)."""
    arrived(sqlite_db)
    form = open_form(ctx, qtbot)
    record_cycle(sqlite_db, worker="server", at=utcnow(), problem=DeliveryProblem.NO_FROM_ADDRESS)
    banner = banner_after(form, qtbot)
    assert "the From address) is missing" in banner.text() and banner.settings_button.isVisible()
    until = utcnow() + timedelta(minutes=10)
    record_cycle(sqlite_db, worker="server", at=utcnow(), problem=DeliveryProblem.SERVER_BUSY, backoff_until=until)
    banner = banner_after(form, qtbot)
    # The time alone today; after midnight (a run at 23:55) the date comes first: "until Dec 01 00:05".
    text = banner.text()
    assert "backing off until " in text and f"{until.astimezone():%H:%M}. " in text and banner.retry_button.isVisible()


def test_retry_now_wakes_the_system_manager(ctx: AppContext, sqlite_db: Database, qtbot: QtBot) -> None:
    arrived(sqlite_db)
    sock, port = unused_port()
    with sock:
        run_cycle(
            sqlite_db, Settings(staff_name="t", smtp_host="127.0.0.1", smtp_port=port, smtp_from=FROM), worker="desk"
        )
    form = open_form(ctx, qtbot)
    assert form.delivery_banner.retry_button.isVisible()
    with qtbot.waitSignal(ctx.sendNowRequested, timeout=10_000):
        form.delivery_banner.retry_button.click()


def test_request_form_shows_the_banner_only_for_a_waiting_email(
    ctx: AppContext, sqlite_db: Database, qtbot: QtBot
) -> None:
    from desktop.ui.requests.request_form import open_request_form

    waiting = arrived(sqlite_db)
    phoned = arrived(sqlite_db, method="Phone")
    run_cycle(sqlite_db, Settings(staff_name="t"), worker="desk")  # not configured
    with sqlite_db.read() as session:
        from desktop.db.models import Request

        numbers = {r.id: r.transaction_number for r in session.query(Request)}
    form = open_request_form(ctx, numbers[waiting])
    qtbot.waitUntil(lambda: form.details is not None and form.delivery_banner.health is not None, timeout=10_000)
    qtbot.waitUntil(form.delivery_banner.isVisible, timeout=10_000)
    assert "no e-mail (SMTP) server is set up" in form.delivery_banner.text()
    other = open_request_form(ctx, numbers[phoned])
    qtbot.waitUntil(lambda: other.details is not None and other.delivery_banner.health is not None, timeout=10_000)
    assert not other.delivery_banner.isVisible()


def test_explain_names_the_remedy_for_every_problem() -> None:
    now = utcnow()
    for problem in DeliveryProblem:
        health = DeliveryHealth(problem, "421 try later", now, None, "w", now, False, 3, 0, now)
        message = explain(health)
        assert message is not None and message.error and "3 notice(s) waiting" in message.text, problem
        retry = problem in {DeliveryProblem.UNREACHABLE, DeliveryProblem.SERVER_BUSY}
        assert message.remedy is (Remedy.RETRY if retry else Remedy.SETTINGS), problem
