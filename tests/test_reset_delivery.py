"""A reset that cannot be delivered is refused, changing nothing (issue 13, item 7), and a reset e-mail never
leaks or outlives its link. Real SQLite files and PostgreSQL, the real SMTP sink, the real Contact Info tab."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select, update

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import NoticeTemplate, Notification, PasswordResetToken
from desktop.domain.clock import utcnow
from desktop.services.admin.shared_settings import set_library_identity
from desktop.services.notices import outbox
from desktop.services.notices.dispatch import run_cycle
from desktop.services.patrons import password_reset as pr
from desktop.ui.context import AppContext
from tests.patron_helpers import make_patron, points_of
from tests.smtp_sink import SmtpSink, smtp_sink
from tests.test_password_reset_ui import open_record

__all__ = ["smtp_sink"]

BASE = "https://my.library.example.edu/reset?lang=en&token="
SENDING = Settings(staff_name="tester", smtp_host="127.0.0.1", smtp_from="ill@example.edu", web_base_url=BASE)


def state(db: Database, patron_id: int) -> tuple[int, int, bool]:
    """Tokens, notices, and whether the old password still works: what a refused reset must leave alone."""
    with db.read() as session:
        tokens = session.scalar(select(func.count(PasswordResetToken.id))) or 0
        queued = session.scalar(select(func.count(Notification.id))) or 0
    return tokens, queued, pr.verify_web_password(db, "ada", "old-password-1")


@pytest.fixture
def ada(any_db: Database) -> int:
    pid = make_patron(any_db, "ada", emails=[("Home", "ada@example.org")])
    pr.set_web_password(any_db, pid, "old-password-1")
    return pid


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"smtp_host": ""}, "no SMTP server"),
        ({"smtp_from": ""}, "no From address"),
        ({"web_base_url": ""}, "no web address for reset links"),
    ],
)
def test_a_reset_that_could_not_be_delivered_is_refused_changing_nothing(
    any_db: Database, ada: int, changes: dict[str, str], reason: str
) -> None:
    row = points_of(any_db, ada, "email")[0].id
    before = state(any_db, ada)
    with pytest.raises(pr.ResetRefusedError, match=reason) as refused:
        pr.reset_password(any_db, row, staff="tester", settings=SENDING.with_changes(**changes))
    assert str(refused.value).startswith("No reset was done")
    assert state(any_db, ada) == before == (0, 0, True)
    assert pr.preview_reset(any_db, row, SENDING.with_changes(**changes)).undeliverable == str(refused.value)
    assert pr.preview_reset(any_db, row, SENDING).undeliverable == ""


def test_the_librarys_e_mail_and_shared_reset_link_base_are_enough(any_db: Database, ada: int) -> None:
    set_library_identity(any_db, changed_by="admin", email="ill@library.example.edu", reset_link_base=BASE)
    workstation = Settings(staff_name="tester", smtp_host="127.0.0.1")  # no SMTP From, no web_base_url of its own
    result = pr.reset_password(any_db, points_of(any_db, ada, "email")[0].id, staff="tester", settings=workstation)
    with any_db.read() as session:
        secret = json.loads(session.get(Notification, result.notification_id).secret)  # type: ignore[union-attr]
    assert secret["link"].startswith(BASE)


def test_a_reset_whose_link_expired_before_sending_is_cancelled_not_sent(
    any_db: Database, ada: int, smtp_sink: SmtpSink
) -> None:
    long_ago = utcnow() - timedelta(hours=pr.TOKEN_HOURS + 1)
    result = pr.reset_password(
        any_db, points_of(any_db, ada, "email")[0].id, staff="tester", settings=SENDING, clock=lambda: long_ago
    )
    settings = SENDING.with_changes(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port, smtp_timeout=5.0)
    summary = run_cycle(any_db, settings, worker="test")
    assert summary.sent == 0 and not smtp_sink.messages
    with any_db.read() as session:
        notice = session.get(Notification, result.notification_id)
        assert notice is not None
        assert notice.state == outbox.CANCELLED and notice.last_reply == pr.EXPIRED_BEFORE_SENDING
        assert notice.secret is None  # the dead link is not kept either


def test_the_html_escaped_link_is_redacted_from_the_stored_copy(
    any_db: Database, ada: int, smtp_sink: SmtpSink
) -> None:
    with any_db.write() as session:  # an HTML part carrying the link: autoescaped, "&" becomes "&amp;"
        session.execute(
            update(NoticeTemplate)
            .where(NoticeTemplate.name == "Password Reset")
            .values(body_html='<p><a href="{{ reset.link }}">{{ reset.link }}</a></p>')
        )
    result = pr.reset_password(any_db, points_of(any_db, ada, "email")[0].id, staff="tester", settings=SENDING)
    settings = SENDING.with_changes(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port, smtp_timeout=5.0)
    assert run_cycle(any_db, settings, worker="test").sent == 1
    [received] = smtp_sink.messages
    html = received.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    token = html.split("token=")[1].split('"')[0]
    assert "&amp;token=" in html and len(token) > 30
    with any_db.read() as session:
        notice = session.get(Notification, result.notification_id)
        assert notice is not None
        assert token not in notice.body_html and token not in notice.body_text
        assert "&amp;" not in notice.body_html.replace("&amp;amp;", "")  # no part of the escaped link survives
        assert notice.body_html.count(outbox.REDACTED_LINK) == 2


def test_the_contact_info_tab_refuses_before_asking_when_no_smtp_server(
    qtbot: QtBot, sqlite_db: Database, settings: Settings
) -> None:
    pid = make_patron(sqlite_db, "ada", emails=[("Home", "ada@example.org")])
    pr.set_web_password(sqlite_db, pid, "old-password-1")
    ctx = AppContext(sqlite_db, settings.with_changes(web_base_url=BASE, smtp_from="ill@example.edu"))  # no server
    try:
        window = open_record(ctx, qtbot, pid)
        tab = window.contact_tab
        tab.table.selectRow(0)
        tab.reset_button.click()
        qtbot.waitUntil(lambda: tab.refusal_box is not None and tab.refusal_box.isVisible(), timeout=5000)
        assert tab.refusal_box is not None and "no SMTP server" in tab.refusal_box.text()
        assert tab.confirm_box is None  # not even asked: the patron would be locked out with no e-mail to come
        assert state(sqlite_db, pid) == (0, 0, True)
        tab.refusal_box.close()
        window.close()
    finally:
        ctx.shutdown()
