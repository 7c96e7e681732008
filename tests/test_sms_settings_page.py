"""Customization Manager → Text Messages (SMS), driven like an administrator drives it."""

# Fixtures are imported from tests/cm_helpers.py; test arguments name them (F811).
# ruff: noqa: F811

from __future__ import annotations

from PySide6.QtCore import QTime
from pytestqt.qtbot import QtBot

from desktop.services.admin.sms_settings import SmsSettings, auth_token, load_sms_settings
from desktop.ui.admin.customization_manager import CustomizationManager
from desktop.ui.context import AppContext
from tests.cm_helpers import ctx, manager, wait_idle  # noqa: F401
from tests.sms_provider_server import ACCOUNT_SID, AUTH_TOKEN, twilio_server

SENDER = "+15005550006"


def _loaded(qtbot: QtBot, manager: CustomizationManager) -> None:
    qtbot.waitUntil(lambda: manager.smsPage.saveButton.isEnabled())


def test_defaults_shown_then_saved_for_every_workstation(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext, memory_keyring: object
) -> None:
    page = manager.smsPage
    _loaded(qtbot, manager)
    assert page.transportCombo.currentData() == "off"
    assert not page.twilioBox.isEnabled() and not page.gatewayBox.isEnabled()
    assert "Verizon = vtext.com" in page.carriersEdit.toPlainText()
    assert page.segmentsSpin.value() == 3
    assert page.quietStartEdit.time() == QTime(21, 0)

    page.transportCombo.setCurrentIndex(page.transportCombo.findData("twilio"))
    assert page.twilioBox.isEnabled()
    page.accountSidEdit.setText(ACCOUNT_SID)
    page.senderEdit.setText(SENDER)
    page.tokenEdit.setText(AUTH_TOKEN)
    page.segmentsSpin.setValue(2)
    page.quietEndEdit.setTime(QTime(7, 30))
    page.saveButton.click()
    qtbot.waitUntil(lambda: page.statusLabel.text() == "Saved for every workstation.")
    stored = load_sms_settings(ctx.db)
    assert (stored.transport, stored.account_sid, stored.sender, stored.max_segments, stored.quiet_end) == (
        "twilio",
        ACCOUNT_SID,
        SENDER,
        2,
        "07:30",
    )
    assert auth_token(stored, allow_env=False) == AUTH_TOKEN


def test_a_bad_entry_is_named_and_what_was_typed_stays(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext
) -> None:
    page = manager.smsPage
    _loaded(qtbot, manager)
    page.transportCombo.setCurrentIndex(page.transportCombo.findData("twilio"))
    page.accountSidEdit.setText("AC-not-a-sid")
    page.saveButton.click()
    qtbot.waitUntil(lambda: "Account SID" in page.statusLabel.text())
    assert page.statusLabel.property("problem") is True
    assert page.accountSidEdit.text() == "AC-not-a-sid"
    assert load_sms_settings(ctx.db) == SmsSettings()

    page.transportCombo.setCurrentIndex(page.transportCombo.findData("gateway"))
    page.carriersEdit.setPlainText("Verizon = vtext.com\nBell Mobility bell.example\n")
    page.saveButton.click()
    assert page.statusLabel.text() == "Not saved. Carrier table: Line 2: write it as 'Carrier name = gateway.domain'."
    assert load_sms_settings(ctx.db) == SmsSettings()


def test_send_test_shows_the_providers_answer(qtbot: QtBot, manager: CustomizationManager, ctx: AppContext) -> None:
    page = manager.smsPage
    _loaded(qtbot, manager)
    with twilio_server() as (base, log):
        page.transportCombo.setCurrentIndex(page.transportCombo.findData("twilio"))
        page.accountSidEdit.setText(ACCOUNT_SID)
        page.senderEdit.setText(SENDER)
        page.apiBaseEdit.setText(base)
        page.tokenEdit.setText(AUTH_TOKEN)
        page.testNumberEdit.setText("+15551234567")
        page.testButton.click()
        qtbot.waitUntil(lambda: page.statusLabel.text().startswith("Sent:"))
        page.tokenEdit.setText("wrong")
        page.testButton.click()
        qtbot.waitUntil(lambda: "401" in page.statusLabel.text())
        wait_idle(qtbot, ctx)
    assert len(log.accepted) == 1
    assert page.statusLabel.property("problem") is True
