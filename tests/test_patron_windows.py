"""Patron search window and the Requests tab of the patron record (pytest-qt, real SQLite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.ui.context import AppContext
from desktop.ui.patrons.patron_record import PatronRecordWindow, open_patron_record
from desktop.ui.patrons.patron_search import open_patron_search
from tests.patron_helpers import make_patron


@pytest.fixture
def ctx(seeded_db: Database, settings: Settings, qtbot: QtBot) -> Iterator[AppContext]:
    context = AppContext(seeded_db, settings)
    yield context
    for widget in QApplication.topLevelWidgets():
        if widget.objectName() in {"patronRecord", "patronSearch", "requestForm"}:
            widget.close()
    context.shutdown()


def records() -> list[PatronRecordWindow]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, PatronRecordWindow) and w.isVisible()]


def test_search_by_phone_in_any_format_and_open_the_record(
    ctx: AppContext, qtbot: QtBot, seeded_db: Database, qtmodeltester: object
) -> None:
    pid = make_patron(seeded_db, "zz", "Zoë", "王", phones=[("Cell", "+1 (646) 555-0199")])
    search = open_patron_search(ctx)
    assert search.objectName() == "patronSearch"
    qtbot.waitUntil(lambda: search.model.rowCount() > 0, timeout=5000)
    qtbot.keyClicks(search.edit, "646.555.0199")
    qtbot.waitUntil(lambda: [h.username for h in search.model.records] == ["zz"], timeout=5000)
    assert search.status.text() == "1 patron(s) found."
    qtmodeltester.check(search.model)  # type: ignore[attr-defined]
    qtbot.keyClick(search.edit, Qt.Key.Key_Return)  # Enter with one hit opens it
    qtbot.waitUntil(lambda: any(w.patron_id == pid and w.record is not None for w in records()), timeout=5000)
    window = next(w for w in records() if w.patron_id == pid)
    assert window.heading.text() == "Zoë 王"
    assert open_patron_record(ctx, pid) is window  # one window per patron


def test_requests_tab_lists_the_patrons_requests_and_opens_one(
    ctx: AppContext, qtbot: QtBot, seeded_db: Database
) -> None:
    from sqlalchemy import func, select

    from desktop.db.models import Request

    with seeded_db.read() as session:
        pid = session.scalar(
            select(Request.patron_id).group_by(Request.patron_id).order_by(func.count().desc()).limit(1)
        )
    assert pid is not None
    window = open_patron_record(ctx, pid)
    qtbot.waitUntil(lambda: window.record is not None, timeout=5000)
    assert window.record is not None
    model = window.requests_model
    assert model.rowCount() == len(window.record.requests) > 1
    assert window.tabs.tabText(1) == f"Re&quests ({model.rowCount()})"
    first = window.record.requests[0]
    assert model.data(model.index(0, 0)) == str(first.transaction_number)
    window.on_request_double_clicked(model.index(0, 2))
    forms: list[object] = []

    def opened() -> bool:
        forms[:] = [w for w in QApplication.topLevelWidgets() if w.objectName() == "requestForm" and w.isVisible()]
        return bool(forms)

    qtbot.waitUntil(opened, timeout=5000)
    assert getattr(forms[0], "transaction_number", None) == first.transaction_number


def test_household_members_are_links_to_their_records(ctx: AppContext, qtbot: QtBot, seeded_db: Database) -> None:
    a = make_patron(seeded_db, "hh1", "Ana", "Berg", household_code="HX")
    b = make_patron(seeded_db, "hh2", "Björn", "Berg", household_code="HX")
    window = open_patron_record(ctx, a)
    qtbot.waitUntil(lambda: window.record is not None, timeout=5000)
    assert f'href="patron:{b}"' in window.household_label.text() and "Björn Berg" in window.household_label.text()
    window.on_member_link(f"patron:{b}")
    qtbot.waitUntil(lambda: any(w.patron_id == b and w.record is not None for w in records()), timeout=5000)
