"""The duplicates view: shared addresses listed with their patrons; a patron opens; fixing one refreshes it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.services.patrons.contact_card import remove_contact
from desktop.ui.context import AppContext
from desktop.ui.patrons.duplicates_view import open_duplicates_view
from desktop.ui.patrons.patron_record import PatronRecordWindow
from tests.patron_helpers import make_patron, points_of


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings, qtbot: QtBot) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, settings)
    yield context
    for widget in QApplication.topLevelWidgets():
        if widget.objectName() in {"patronRecord", "duplicatesView"}:
            widget.close()
    context.shutdown()


def test_view_lists_shared_addresses_and_opens_a_patron(ctx: AppContext, qtbot: QtBot, sqlite_db: Database) -> None:
    make_patron(sqlite_db, "ada", "Ada", "A", household_code="H1", emails=[("Home", "shared@example.org")])
    grace = make_patron(sqlite_db, "grace", "Grace", "H", household_code="H2", emails=[("Home", "Shared@example.org")])
    view = open_duplicates_view(ctx)
    assert view.objectName() == "duplicatesView"
    qtbot.waitUntil(lambda: view.tree.topLevelItemCount() == 1, timeout=5000)
    top = view.tree.topLevelItem(0)
    assert top is not None and top.text(0) == "shared@example.org" and top.text(2) == "2 households"
    child = top.child(1)
    assert child.text(0) == "Grace H" and child.text(1) == "grace"
    view.tree.setCurrentItem(top)
    assert not view.open_button.isEnabled()
    view.tree.setCurrentItem(child)
    assert view.open_button.isEnabled()
    view.open_button.click()
    qtbot.waitUntil(
        lambda: any(isinstance(w, PatronRecordWindow) and w.patron_id == grace for w in QApplication.topLevelWidgets()),
        timeout=5000,
    )
    remove_contact(sqlite_db, points_of(sqlite_db, grace, "email")[0].id)
    ctx.changed.emit("patrons")
    qtbot.waitUntil(lambda: view.tree.topLevelItemCount() == 0, timeout=5000)
    assert view.status.text() == "No address is shared across households."
