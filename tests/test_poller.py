"""The GUI's System Manager: a worker on its own registered QThread, woken by request changes and "Send now",
one clear problem message per problem, the status-bar indicator, and a thread that is stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from PySide6.QtGui import QPalette
from pytestqt.qtbot import QtBot

from desktop.config import SMTP_KEYRING_SERVICE
from desktop.db.engine import Database
from desktop.domain.statuses import Status
from desktop.secrets import smtp_account
from desktop.services.admin.sms_settings import (
    SMS_AUTH_TOKEN_ENV,
    SmsSettings,
    load_sms_settings,
    save_sms_settings,
    store_auth_token,
)
from desktop.services.notices import smtp_backoff
from desktop.services.notices.dispatch import CycleSummary
from desktop.ui.context import AppContext
from desktop.ui.notices.poller import PollerController, PollerIndicator
from desktop.ui.threads import running_threads
from desktop.ui.widgets.colours import MINIMUM_CONTRAST, TONE_PROPERTY, contrast_ratio
from tests.outbox_support import add_patron, add_request, add_sms_patron, move, notices, request_status, sink_settings
from tests.sms_provider_server import ACCOUNT_SID, AUTH_TOKEN, twilio_server
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]


@pytest.fixture
def poller(sqlite_db: Database, smtp_sink: SmtpSink, qtbot: QtBot) -> Iterator[tuple[AppContext, PollerController]]:
    ctx = AppContext(sqlite_db, sink_settings(smtp_sink, poll_seconds=300))
    controller = PollerController(ctx)
    with qtbot.waitSignal(controller.cycleFinished, timeout=10_000):
        controller.start()  # the first cycle runs at once
    yield ctx, controller
    controller.shutdown()
    ctx.shutdown()
    assert not controller.running
    assert "callslip-system-manager" not in running_threads()


def test_a_status_change_on_this_workstation_sends_at_once(
    poller: tuple[AppContext, PollerController], sqlite_db: Database, smtp_sink: SmtpSink, qtbot: QtBot
) -> None:
    ctx, controller = poller
    assert controller.running
    request_id = add_request(sqlite_db, add_patron(sqlite_db))
    move(sqlite_db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    with qtbot.waitSignal(controller.cycleFinished, timeout=10_000, check_params_cb=lambda s: s.sent == 1) as blocker:
        ctx.changed.emit("requests")  # what every window emits after changing requests
    summary = blocker.args[0]
    assert isinstance(summary, CycleSummary) and summary.errors == []
    assert len(smtp_sink.messages) == 1
    assert request_status(sqlite_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    indicator = PollerIndicator(controller)
    qtbot.addWidget(indicator)
    assert indicator.objectName() == "pollerIndicator"
    qtbot.waitUntil(lambda: indicator.health is not None, timeout=10_000)
    assert "waiting 0 · failed 0" in indicator.text() and "sent 1" in indicator.text()


def test_send_now_and_a_problem_reported_once(
    poller: tuple[AppContext, PollerController], sqlite_db: Database, smtp_sink: SmtpSink, qtbot: QtBot
) -> None:
    ctx, controller = poller
    indicator = PollerIndicator(controller)
    qtbot.addWidget(indicator)
    problems: list[str] = []
    controller.problem.connect(problems.append)
    patron = add_patron(sqlite_db)
    for _ in range(3):
        move(sqlite_db, add_request(sqlite_db, patron), Status.AWAITING_CUSTOMER_CONTACT)
    smtp_sink.stop()
    for _ in range(2):  # two cycles with the server down: one message, not one per cycle or per notice
        with qtbot.waitSignal(controller.cycleFinished, timeout=10_000):
            ctx.request_send_now()
    assert len(problems) == 1 and "connection refused" in problems[0]
    qtbot.waitUntil(lambda: "waiting 3" in indicator.text(), timeout=10_000)  # the current count, from the database
    assert indicator.text().startswith("⚠ E-mail: server unreachable since ")
    label = indicator.label  # the warning in the palette's error tone, readable on its window (issue 21)
    label.ensurePolished()
    assert label.property(TONE_PROPERTY) == "error"
    window = indicator.palette().color(QPalette.ColorRole.Window)
    assert contrast_ratio(label.palette().color(label.foregroundRole()), window) >= MINIMUM_CONTRAST
    smtp_sink.start()
    smtp_backoff.clear(sqlite_db)  # what Retry now does: the unreachable server's back-off is over
    with qtbot.waitSignal(controller.cycleFinished, timeout=10_000, check_params_cb=lambda s: s.sent == 3):
        controller.send_now()
    qtbot.waitUntil(lambda: "waiting 0" in indicator.text(), timeout=10_000)
    # One patron's three items ready together: one message listing them all (issue 18, part 4), three notices sent.
    assert len(smtp_sink.messages) == 1 and not indicator.text().startswith("⚠")
    assert controller.last_problem == ""


def test_new_settings_apply_on_the_next_cycle(
    poller: tuple[AppContext, PollerController], sqlite_db: Database, smtp_sink: SmtpSink, qtbot: QtBot
) -> None:
    ctx, controller = poller
    ctx.apply_settings(ctx.settings.with_changes(smtp_host=""))
    qtbot.waitUntil(lambda: controller.last_summary is not None and controller.last_summary.errors == [], timeout=5000)
    move(sqlite_db, add_request(sqlite_db, add_patron(sqlite_db)), Status.AWAITING_CUSTOMER_CONTACT)
    with qtbot.waitSignal(controller.problem, timeout=10_000) as blocker:
        controller.send_now()
    assert "not configured" in blocker.args[0]
    with qtbot.waitSignal(controller.cycleFinished, timeout=10_000, check_params_cb=lambda s: s.sent == 1):
        ctx.apply_settings(sink_settings(smtp_sink))
    assert notices(sqlite_db)[0].state == "sent"


class BrokenKeyring(KeyringBackend):
    """A keyring that is there but refuses (a locked wallet)."""

    priority = 1

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("locked")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.KeyringLocked("locked")


def test_an_unavailable_keyring_is_one_clear_message(sqlite_db: Database, smtp_sink: SmtpSink, qtbot: QtBot) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(BrokenKeyring())  # type: ignore[no-untyped-call]
    ctx = AppContext(sqlite_db, sink_settings(smtp_sink, smtp_username="ill"))
    controller = PollerController(ctx)
    problems: list[str] = []
    controller.problem.connect(problems.append)
    try:
        move(sqlite_db, add_request(sqlite_db, add_patron(sqlite_db)), Status.AWAITING_CUSTOMER_CONTACT)
        with qtbot.waitSignal(controller.cycleFinished, timeout=10_000):
            controller.start()
        with qtbot.waitSignal(controller.cycleFinished, timeout=10_000):
            controller.send_now()
        assert len(problems) == 1 and "SMTP password" in problems[0] and "keyring" in problems[0]
        assert notices(sqlite_db)[0].state == "pending" and not smtp_sink.messages  # nothing lost
    finally:
        controller.shutdown()
        ctx.shutdown()
        keyring.set_keyring(previous)
    assert not controller.running


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_password_comes_from_the_keyring(sqlite_db: Database, memory_keyring: KeyringBackend, qtbot: QtBot) -> None:
    sink = SmtpSink(credentials=("ill", "from-keyring")).start()  # AUTH without TLS (TLS+AUTH: test_mailer)
    settings = sink_settings(sink, smtp_username="ill")
    memory_keyring.set_password(SMTP_KEYRING_SERVICE, smtp_account(settings), "from-keyring")
    ctx = AppContext(sqlite_db, settings)
    controller = PollerController(ctx)
    try:
        move(sqlite_db, add_request(sqlite_db, add_patron(sqlite_db)), Status.AWAITING_CUSTOMER_CONTACT)
        with qtbot.waitSignal(controller.cycleFinished, timeout=10_000, check_params_cb=lambda s: s.sent == 1):
            controller.start()
        assert len(sink.messages) == 1
    finally:
        controller.shutdown()
        ctx.shutdown()
        sink.stop()


def test_shutdown_before_start_and_twice(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    ctx = AppContext(sqlite_db, sink_settings(smtp_sink))
    controller = PollerController(ctx)
    controller.shutdown()
    controller.shutdown()
    controller.start()  # refused after shutdown
    assert not controller.running
    ctx.shutdown()


def test_the_shared_interval_applies_unless_the_workstation_sets_its_own(
    sqlite_db: Database, smtp_sink: SmtpSink, qtbot: QtBot
) -> None:
    """The Routing tab's poll interval reaches every workstation's poller without a restart."""
    from desktop.services.admin import shared_settings

    before = shared_settings.load_shared_settings(sqlite_db)
    shared_settings.save_shared_settings(sqlite_db, before, replace(before, poll_seconds=77), changed_by="admin")
    ctx = AppContext(sqlite_db, sink_settings(smtp_sink, poll_seconds=0))
    controller = PollerController(ctx)
    try:
        with qtbot.waitSignal(controller.intervalChanged, timeout=10_000, check_params_cb=lambda s: s == 77):
            controller.start()
        current = shared_settings.load_shared_settings(sqlite_db)
        shared_settings.save_shared_settings(sqlite_db, current, replace(current, poll_seconds=45), changed_by="admin")
        with qtbot.waitSignal(controller.intervalChanged, timeout=10_000, check_params_cb=lambda s: s == 45):
            controller.send_now()  # the next cycle picks up the new shared value
        with qtbot.waitSignal(controller.intervalChanged, timeout=10_000, check_params_cb=lambda s: s == 600):
            ctx.apply_settings(ctx.settings.with_changes(poll_seconds=600))  # this workstation's own wins
        assert controller.interval_seconds == 600
    finally:
        controller.shutdown()
        ctx.shutdown()


def test_the_sms_token_comes_from_the_keyring_not_the_environment(
    sqlite_db: Database, smtp_sink: SmtpSink, memory_keyring: KeyringBackend, qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The GUI's System Manager reads the SMS provider's token from the keyring, on its worker thread."""
    monkeypatch.setenv(SMS_AUTH_TOKEN_ENV, "from-the-environment")  # a headless System Manager's, not the GUI's
    with twilio_server() as (url, log):
        sms = save_sms_settings(sqlite_db, load_sms_settings(sqlite_db),
                                SmsSettings(transport="twilio", account_sid=ACCOUNT_SID, sender="+15005550006",
                                            api_base=url, quiet_start="00:00", quiet_end="00:00"),
                                changed_by="tester")  # fmt: skip
        ctx = AppContext(sqlite_db, sink_settings(smtp_sink, poll_seconds=300))
        controller = PollerController(ctx)
        try:
            move(sqlite_db, add_request(sqlite_db, add_sms_patron(sqlite_db, "+16175551234")),
                 Status.AWAITING_CUSTOMER_CONTACT)  # fmt: skip
            with qtbot.waitSignal(controller.cycleFinished, timeout=10_000) as blocker:
                controller.start()
            assert "no auth token" in "; ".join(blocker.args[0].errors)  # the environment's was not used
            assert log.requests == 0
            store_auth_token(sms, AUTH_TOKEN)
            with qtbot.waitSignal(controller.cycleFinished, timeout=10_000, check_params_cb=lambda s: s.sent == 1):
                controller.send_now()
            [form] = log.accepted
            assert form["To"] == "+16175551234"
        finally:
            controller.shutdown()
            ctx.shutdown()
