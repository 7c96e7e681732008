"""The bounce flag in the desk's windows: the Contact Info tab shows it and clears it; the Bounced addresses
list shows every flagged address with its patron, opens the patron and clears the flag."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import ContactPoint
from desktop.ui.bounced_view import open_bounced_view
from desktop.ui.contact_info_tab import NOTES
from desktop.ui.context import AppContext
from desktop.ui.patron_record import PatronRecordWindow, open_patron_record
from tests.patron_helpers import make_patron, points_of

WHEN = datetime(2026, 11, 30, 7, 50, tzinfo=UTC)


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings, qtbot: QtBot) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, settings)
    yield context
    for widget in QApplication.topLevelWidgets():
        if widget.objectName() in {"patronRecord", "bouncedView"}:
            widget.close()
    context.shutdown()


def flag(db: Database, contact_id: int, reason: str = "550 5.1.1 user unknown") -> None:
    with db.write() as session:
        point = session.get(ContactPoint, contact_id)
        assert point is not None
        point.bounced_at, point.bounce_reason = WHEN, reason


def test_bounced_list_shows_opens_and_clears(ctx: AppContext, qtbot: QtBot, sqlite_db: Database) -> None:
    ada = make_patron(sqlite_db, "ada", "Ada", "Lovelace", emails=[("Home", "ada@example.org")])
    make_patron(sqlite_db, "grace", "Grace", "Hopper", emails=[("Home", "grace@example.org")])
    flag(sqlite_db, points_of(sqlite_db, ada, "email")[0].id)
    view = open_bounced_view(ctx)
    qtbot.waitUntil(lambda: view.tree.topLevelItemCount() == 1, timeout=5000)
    item = view.tree.topLevelItem(0)
    assert item is not None
    assert [item.text(n) for n in range(4)] == [
        "ada@example.org",
        "Ada Lovelace",
        "ada",
        "bounced on 2026-11-30: 550 5.1.1 user unknown",
    ]
    assert view.status.text() == "1 bounced address(es)."
    assert not view.clear_button.isEnabled()
    view.tree.setCurrentItem(item)
    assert view.clear_button.isEnabled() and view.open_button.isEnabled()
    view.open_button.click()
    qtbot.waitUntil(
        lambda: any(isinstance(w, PatronRecordWindow) and w.patron_id == ada for w in QApplication.topLevelWidgets()),
        timeout=5000,
    )
    view.clear_button.click()
    qtbot.waitUntil(lambda: view.tree.topLevelItemCount() == 0, timeout=5000)
    assert view.status.text() == "No address has bounced."
    assert points_of(sqlite_db, ada, "email")[0].bounced_at is None


def test_contact_info_tab_shows_the_flag_and_clears_it(ctx: AppContext, qtbot: QtBot, sqlite_db: Database) -> None:
    ada = make_patron(sqlite_db, "ada", "Ada", "Lovelace", emails=[("Home", "ada@example.org")],
                      phones=[("Home", "(617) 555-0100")])  # fmt: skip
    flag(sqlite_db, points_of(sqlite_db, ada, "email")[0].id)
    window = open_patron_record(ctx, ada)
    tab = window.contact_tab
    qtbot.waitUntil(lambda: tab.model.rowCount() == 2, timeout=5000)
    notes = [tab.model.index(n, NOTES).data() for n in range(2)]
    assert "⚠ bounced on 2026-11-30: 550 5.1.1 user unknown" in notes
    email_row = notes.index("⚠ bounced on 2026-11-30: 550 5.1.1 user unknown")
    tab.table.selectRow(1 - email_row)
    assert not tab.clear_bounce_button.isEnabled(), "the phone has no flag"
    tab.table.selectRow(email_row)
    assert tab.clear_bounce_button.isEnabled()
    tab.clear_bounce_button.click()
    qtbot.waitUntil(lambda: not tab.model.index(email_row, NOTES).data(), timeout=5000)
    assert not tab.clear_bounce_button.isEnabled()
    assert points_of(sqlite_db, ada, "email")[0].bounced_at is None
