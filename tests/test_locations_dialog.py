"""The Locations code table dialog, driven as staff would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.services.patrons.locations import list_locations
from desktop.ui.context import AppContext
from desktop.ui.patrons.locations_dialog import ACTIVE_COLUMN, KIND_COLUMNS, LocationsDialog, open_locations_dialog
from tests.patron_helpers import make_patron


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings, qtbot: QtBot) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, settings)
    yield context
    for widget in QApplication.topLevelWidgets():
        if widget.objectName() == "locationsDialog":
            widget.close()
    context.shutdown()


def opened(ctx: AppContext, qtbot: QtBot) -> LocationsDialog:
    dialog = open_locations_dialog(ctx)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 5, timeout=5000)
    return dialog


def names(db: Database) -> list[str]:
    return [r.name for r in list_locations(db)]


def test_add_rename_move_and_deactivate(ctx: AppContext, qtbot: QtBot, sqlite_db: Database) -> None:
    dialog = opened(ctx, qtbot)
    assert dialog.objectName() == "locationsDialog"
    dialog.name_edit.setText("Summer house")
    dialog.add_button.click()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 6, timeout=5000)
    assert dialog.current() is not None and dialog.current().name == "Summer house"  # type: ignore[union-attr]
    dialog.name_edit.setText("Cottage")
    dialog.rename_button.click()
    qtbot.waitUntil(lambda: names(sqlite_db)[-1] == "Cottage", timeout=5000)
    qtbot.waitUntil(lambda: dialog.up_button.isEnabled(), timeout=5000)
    dialog.up_button.click()
    qtbot.waitUntil(lambda: names(sqlite_db)[-2:] == ["Cottage", "Other"], timeout=5000)
    qtbot.waitUntil(lambda: dialog.active_button.isEnabled(), timeout=5000)
    dialog.active_button.click()
    qtbot.waitUntil(lambda: dialog.table.item(4, ACTIVE_COLUMN).text() == "no", timeout=5000)  # type: ignore[union-attr]
    assert dialog.active_button.text() == "R&eactivate"
    dialog.name_edit.setText("home")
    dialog.add_button.click()
    assert "already a location called home" in dialog.status.text()


def test_a_used_kind_cannot_be_unticked_and_the_table_shows_the_saved_state(
    ctx: AppContext, qtbot: QtBot, sqlite_db: Database
) -> None:
    make_patron(sqlite_db, "ada", phones=[("Cell", "312 555 0100")])
    dialog = opened(ctx, qtbot)
    row = names(sqlite_db).index("Cell")
    dialog.table.selectRow(row)
    assert not dialog.delete_button.isEnabled()  # in use
    cell = dialog.table.item(row, KIND_COLUMNS["phone"])
    assert cell is not None and cell.checkState() == Qt.CheckState.Checked
    cell.setCheckState(Qt.CheckState.Unchecked)
    qtbot.waitUntil(lambda: "still used by 1 phone" in dialog.status.text(), timeout=5000)
    qtbot.waitUntil(
        lambda: dialog.table.item(row, KIND_COLUMNS["phone"]).checkState() == Qt.CheckState.Checked,  # type: ignore[union-attr]
        timeout=5000,
    )
    email_cell = dialog.table.item(row, KIND_COLUMNS["email"])
    assert email_cell is not None
    email_cell.setCheckState(Qt.CheckState.Checked)
    qtbot.waitUntil(lambda: "email" in list_locations(sqlite_db)[row].kinds, timeout=5000)


def test_default_per_kind(ctx: AppContext, qtbot: QtBot, sqlite_db: Database) -> None:
    dialog = opened(ctx, qtbot)
    combo = dialog.default_combos["email"]
    assert combo.currentText() == "Home"
    combo.setCurrentIndex(combo.findText("Work"))
    combo.activated.emit(combo.currentIndex())
    qtbot.waitUntil(
        lambda: "email" in next(r for r in list_locations(sqlite_db) if r.name == "Work").default_for, timeout=5000
    )
    assert "email" not in next(r for r in list_locations(sqlite_db) if r.name == "Home").default_for
