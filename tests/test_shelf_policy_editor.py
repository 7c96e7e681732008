"""Customization Manager → Routing → Hold shelf: the policy and closed days edited through the real widgets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.domain.shelf import ReminderStep, StepKind
from desktop.services.admin.shelf_settings import load_shelf_settings
from desktop.ui.admin.shelf_policy_editor import ShelfPolicyEditor
from desktop.ui.context import AppContext


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, settings)
    yield context
    context.shutdown()


@pytest.fixture
def editor(ctx: AppContext, qtbot: QtBot) -> ShelfPolicyEditor:
    widget = ShelfPolicyEditor(ctx)
    qtbot.addWidget(widget)
    qtbot.waitUntil(lambda: widget.saveButton.isEnabled(), timeout=10_000)
    return widget


def test_defaults_are_shown_and_a_schedule_is_saved(editor: ShelfPolicyEditor, ctx: AppContext, qtbot: QtBot) -> None:
    assert editor.stepsTable.rowCount() == 1 and editor.stepsTable.item(0, 0).text() == "2"  # type: ignore[union-attr]
    assert editor.sendHourSpin.value() == 9 and all(c.isChecked() for c in editor.weekdayChecks)
    editor.addStepButton.click()
    editor.stepsTable.item(1, 0).setText("3")  # type: ignore[union-attr]
    editor.stepsTable.cellWidget(1, 1).setCurrentIndex(0)  # type: ignore[union-attr]
    editor.sendHourSpin.setValue(10)
    editor.weekdayChecks[6].setChecked(False)
    editor.expiredCheck.setChecked(False)
    editor.closedDatesEdit.setPlainText("2026-12-24")
    editor.closedYearlyEdit.setPlainText("12-25\n01-01")
    editor.saveButton.click()
    qtbot.waitUntil(lambda: "saved" in editor.status.text(), timeout=10_000)
    stored = load_shelf_settings(ctx.db)
    pickup_id = editor.pickupCombo.currentData()
    policy = stored.policy(pickup_id)
    assert policy.steps == (ReminderStep(StepKind.BEFORE_END, 2), ReminderStep(StepKind.AFTER_NOTIFIED, 3))
    assert (policy.send_hour, 6 in policy.weekdays, policy.expired_notice) == (10, False, False)
    assert stored.closed.is_closed(date(2026, 12, 24)) and stored.closed.is_closed(date(2030, 1, 1))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: e.closedDatesEdit.setPlainText("24.12.2026"), "a closed date is written YYYY-MM-DD"),
        (lambda e: e.closedYearlyEdit.setPlainText("02-30"), "02-30 is not a day of the year"),
        (lambda e: [c.setChecked(False) for c in e.weekdayChecks], "at least one day of the week"),
        (lambda e: e.stepsTable.item(0, 0).setText("two"), "reminder 1: the days must be a whole number"),
        (lambda e: e.addStepButton.click(), "reminder 2 repeats an earlier one"),
        (lambda e: e.timezoneEdit.setText("Mars/Olympus"), "unknown time zone"),
    ],
)
def test_bad_entries_are_named_and_nothing_is_saved(
    editor: ShelfPolicyEditor, ctx: AppContext, qtbot: QtBot, edit: object, message: str
) -> None:
    before = load_shelf_settings(ctx.db)
    edit(editor)  # type: ignore[operator]
    editor.saveButton.click()
    qtbot.waitUntil(lambda: message in editor.status.text(), timeout=10_000)
    assert editor.status.text().startswith("⚠")
    assert load_shelf_settings(ctx.db) == before


def test_the_routing_tab_holds_the_editor(ctx: AppContext, qtbot: QtBot) -> None:
    from desktop.ui.admin.customization_manager import CustomizationManager

    manager = CustomizationManager(ctx)
    qtbot.addWidget(manager)
    assert manager.findChild(ShelfPolicyEditor, "shelfPolicyEditor") is not None
