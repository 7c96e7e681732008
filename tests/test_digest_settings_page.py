"""Customization Manager → One Message for Many Items, driven like an administrator drives it."""

# Fixtures are imported from tests/cm_helpers.py; test arguments name them (F811).
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from desktop.services.admin.digest_settings import DigestSettings, load_digest_settings, save_digest_settings
from desktop.ui.admin.customization_manager import CustomizationManager
from desktop.ui.context import AppContext
from tests.cm_helpers import ctx, manager  # noqa: F401


def _loaded(qtbot: QtBot, manager: CustomizationManager) -> None:
    qtbot.waitUntil(lambda: manager.digestPage.saveButton.isEnabled())


def test_defaults_shown_then_saved_for_every_workstation(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext, tmp_path: Path
) -> None:
    page = manager.digestPage
    _loaded(qtbot, manager)
    manager.tabs.setCurrentWidget(page)
    assert page.enabledCheck.isChecked() and page.windowSpin.value() == 15 and page.windowSpin.isEnabled()
    assert (page.windowSpin.minimum(), page.windowSpin.maximum()) == (1, 120)
    assert "waits up to this many minutes" in page.explanationLabel.text()
    assert page.grab().save(str(tmp_path / "digest_page.png"))  # looked at while building the page
    page.windowSpin.setValue(30)
    page.saveButton.click()
    qtbot.waitUntil(lambda: page.statusLabel.text() == "Saved for every workstation.")
    assert load_digest_settings(ctx.db) == DigestSettings(enabled=True, window_minutes=30)

    page.enabledCheck.setChecked(False)
    assert not page.windowSpin.isEnabled()
    page.saveButton.click()
    qtbot.waitUntil(lambda: load_digest_settings(ctx.db).enabled is False)
    qtbot.waitUntil(lambda: page.saveButton.isEnabled())
    assert page.statusLabel.property("problem") is False


def test_a_concurrent_edit_is_refused_and_what_was_set_stays(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext
) -> None:
    page = manager.digestPage
    _loaded(qtbot, manager)
    save_digest_settings(ctx.db, DigestSettings(), DigestSettings(window_minutes=45), changed_by="another desk")
    page.windowSpin.setValue(5)
    page.saveButton.click()
    qtbot.waitUntil(lambda: "another desk" in page.statusLabel.text())
    assert page.statusLabel.property("problem") is True
    assert page.windowSpin.value() == 5 and page.saveButton.isEnabled()
    assert load_digest_settings(ctx.db) == DigestSettings(window_minutes=45)
