"""Reset E-mail Password end to end: the Contact Info tab, the outbox, a real SMTP server, the link, the CLI."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select

from desktop import manager
from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import Notification, PasswordResetToken, Patron
from desktop.services.patrons import password_reset as pr
from desktop.ui.context import AppContext
from desktop.ui.patrons.duplicates_view import DuplicatesView
from desktop.ui.patrons.patron_record import PatronRecordWindow, open_patron_record
from tests.patron_helpers import make_patron
from tests.smtp_sink import SmtpSink, smtp_sink  # noqa: F401 - fixture

BASE = "https://library.example.org/reset?token="


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings, qtbot: QtBot) -> Iterator[AppContext]:
    sending = settings.with_changes(web_base_url=BASE, smtp_host="127.0.0.1", smtp_from="ill@example.edu")
    context = AppContext(sqlite_db, sending)
    yield context
    for widget in QApplication.topLevelWidgets():
        if widget.objectName() in {"patronRecord", "contactCard", "duplicatesView"}:
            widget.close()
    context.shutdown()


def open_record(ctx: AppContext, qtbot: QtBot, patron_id: int) -> PatronRecordWindow:
    window = open_patron_record(ctx, patron_id)
    qtbot.waitUntil(lambda: window.record is not None, timeout=5000)
    return window


def counts(db: Database) -> tuple[int, int]:
    with db.read() as session:
        return (
            session.scalar(select(func.count(PasswordResetToken.id))) or 0,
            session.scalar(select(func.count(Notification.id))) or 0,
        )


def test_reset_on_an_address_shared_across_households_is_refused(
    ctx: AppContext, qtbot: QtBot, sqlite_db: Database
) -> None:
    ada = make_patron(sqlite_db, "ada", household_code="H1", emails=[("Home", "shared@example.org")])
    make_patron(sqlite_db, "grace", "Grace", "Hopper", household_code="H2", emails=[("Work", "shared@example.org")])
    pr.set_web_password(sqlite_db, ada, "old-password-1")
    window = open_record(ctx, qtbot, ada)
    tab = window.contact_tab
    tab.table.selectRow(0)
    assert tab.reset_button.isEnabled()
    tab.reset_button.click()
    qtbot.waitUntil(lambda: tab.refusal_box is not None and tab.refusal_box.isVisible(), timeout=5000)
    box = tab.refusal_box
    assert box is not None
    assert "different households" in box.text()
    assert "Grace Hopper (grace, The H2 household)" in box.informativeText()
    assert "Ada Lovelace (ada, The H1 household)" in box.informativeText()
    assert tab.confirm_box is None  # no question: nothing can be done until de-duplicated
    assert counts(sqlite_db) == (0, 0)
    assert pr.verify_web_password(sqlite_db, "ada", "old-password-1")
    box.findChild(object, "openDuplicatesButton").click()  # type: ignore[union-attr]
    views: list[DuplicatesView] = []

    def shown() -> bool:
        views[:] = [w for w in QApplication.topLevelWidgets() if isinstance(w, DuplicatesView) and w.isVisible()]
        return bool(views) and bool(views[0].shared)

    qtbot.waitUntil(shown, timeout=5000)
    assert [s.email for s in views[0].shared] == ["shared@example.org"]
    top = views[0].tree.topLevelItem(0)
    assert top is not None and top.childCount() == 2
    box.close()


def test_reset_sends_a_working_single_use_link(
    ctx: AppContext,
    qtbot: QtBot,
    sqlite_db: Database,
    smtp_sink: SmtpSink,  # noqa: F811
) -> None:
    from desktop.services.notices.dispatch import run_cycle

    ada = make_patron(sqlite_db, "ada", emails=[("Home", "ada@example.org"), ("Work", "ada@work.example.edu")])
    pr.set_web_password(sqlite_db, ada, "old-password-1")
    window = open_record(ctx, qtbot, ada)
    tab = window.contact_tab
    tab.table.selectRow(1)
    tab.reset_button.click()
    qtbot.waitUntil(lambda: tab.confirm_box is not None and tab.confirm_box.isVisible(), timeout=5000)
    box = tab.confirm_box
    assert box is not None
    assert "ada@work.example.edu" in box.text() and "stops working at once" in box.text() and "48 hours" in box.text()
    with qtbot.waitSignal(ctx.sendNowRequested, timeout=5000):
        box.findChild(object, "confirmButton").click()  # type: ignore[union-attr]
    work_note = lambda: tab.model.rows[1].reset_note  # noqa: E731
    qtbot.waitUntil(lambda: work_note().startswith("reset queued at"), timeout=5000)
    assert re.fullmatch(r"reset queued at \S+ \S+ UTC, expires \S+ \S+ UTC", work_note())
    assert not pr.verify_web_password(sqlite_db, "ada", "old-password-1")

    settings = Settings(
        staff_name="tester",
        smtp_host=smtp_sink.host,
        smtp_port=smtp_sink.port,
        smtp_from="ill@library.example.org",
        smtp_timeout=5.0,
        web_base_url=BASE,
    )
    summary = run_cycle(sqlite_db, settings, worker="test")
    assert summary.sent == 1, summary
    (received,) = smtp_sink.messages
    assert received.rcpt_tos == ["ada@work.example.edu"]
    text = received.text
    links = re.findall(re.escape(BASE) + r"([A-Za-z0-9_\-]+)", text)
    assert len(links) == 1, text
    token = links[0]
    assert "48 hours" in text
    with sqlite_db.read() as session:
        stored = session.scalar(select(PasswordResetToken))
        notice = session.scalar(select(Notification))
        patron = session.get(Patron, ada)
        assert stored is not None and notice is not None and patron is not None
        assert stored.token_hash == pr.hash_token(token) and token not in stored.token_hash
        assert notice.secret is None and notice.state == "sent"
        assert token not in (notice.body_text + notice.body_html)  # the stored copy has the link redacted
        assert token not in (patron.web_password_hash or "")
    ctx.changed.emit("patrons")
    qtbot.waitUntil(lambda: work_note().startswith("reset sent at"), timeout=5000)

    assert pr.redeem_reset(sqlite_db, token, "my-new-password") == ada
    assert pr.verify_web_password(sqlite_db, "ada", "my-new-password")
    with pytest.raises(pr.RedeemRefusedError):
        pr.redeem_reset(sqlite_db, token, "second-try-pass")
    assert pr.verify_web_password(sqlite_db, "ada", "my-new-password")


def _issue_token(db: Database) -> str:
    ada = make_patron(db, "cli", emails=[("Home", "cli@example.org")])
    with db.read() as session:
        point_id = session.scalar(select(Patron).where(Patron.id == ada)).contact_points[0].id  # type: ignore[union-attr]
    sending = Settings(staff_name="tester", smtp_host="127.0.0.1", smtp_from="ill@example.edu", web_base_url=BASE)
    result = pr.reset_password(db, point_id, staff="tester", settings=sending)
    import json

    with db.read() as session:
        notice = session.get(Notification, result.notification_id)
        assert notice is not None and notice.secret
        return str(json.loads(notice.secret)["link"][len(BASE) :])


def test_manager_redeem_reset_reads_the_password_from_stdin_once(
    sqlite_db: Database, db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = _issue_token(sqlite_db)
    monkeypatch.setattr("sys.stdin", io.StringIO("typed-on-stdin\n"))
    out = io.StringIO()
    assert manager.main(["--database", str(db_path), "redeem-reset", token], out) == 0
    assert "new web password set" in out.getvalue()
    assert "typed-on-stdin" not in out.getvalue() + capsys.readouterr().err
    assert pr.verify_web_password(sqlite_db, "cli", "typed-on-stdin")
    monkeypatch.setattr("sys.stdin", io.StringIO("again-password\n"))
    assert manager.main(["--database", str(db_path), "redeem-reset", token], io.StringIO()) == 1
    assert pr.GENERIC_REFUSAL in capsys.readouterr().err


def test_manager_redeem_reset_with_a_password_file(
    sqlite_db: Database, db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = _issue_token(sqlite_db)
    secret = tmp_path / "pw.txt"
    secret.write_text("short\n", encoding="utf-8")
    args = ["--database", str(db_path), "redeem-reset", token, "--password-file", str(secret)]
    assert manager.main(args, io.StringIO()) == 1
    assert "at least 8 characters" in capsys.readouterr().err
    secret.write_text("from-a-file-123\n", encoding="utf-8")
    assert manager.main(args, io.StringIO()) == 0
    assert pr.verify_web_password(sqlite_db, "cli", "from-a-file-123")
