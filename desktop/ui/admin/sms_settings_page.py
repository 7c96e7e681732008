"""Customization Manager → Text Messages (SMS): the library's SMS transport, its account, limits and quiet hours.

Shared by every workstation (:mod:`desktop.services.admin.sms_settings`); only the provider's auth token is kept
per computer, in its keyring. Loading, saving and "Send test" run off the GUI thread; a refused save names each
field and keeps what was typed; a carrier-table line that cannot be read is named and the others are kept.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import shiboken6
from PySide6.QtCore import QTime, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.services.admin.sms_settings import (
    MAX_SEGMENTS_LIMIT,
    TRANSPORTS,
    SmsSettings,
    TestSmsResult,
    auth_token,
    load_sms_settings,
    save_sms_settings,
    send_test_sms,
    store_auth_token,
)
from desktop.services.database import Database
from desktop.services.notices.sms_transports import format_gateway_table, parse_gateway_table
from desktop.ui.context import AppContext
from desktop.ui.widgets.colours import Tone, set_tone

TIME_FORMAT = "HH:mm"


class SmsSettingsPage(QWidget):
    """The SMS tab (``smsSettingsPage``)."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("smsSettingsPage")
        self.setAccessibleName("Text message settings")
        self._base: SmsSettings | None = None
        root = QVBoxLayout(self)

        top = QFormLayout()
        self.transportCombo = QComboBox(self)
        self.transportCombo.setObjectName("smsTransportCombo")
        self.transportCombo.setAccessibleName("How text messages are sent")
        for key, label in TRANSPORTS.items():
            self.transportCombo.addItem(label, key)
        self.transportCombo.currentIndexChanged.connect(self._on_transport_changed)
        transport_label = QLabel("Send texts &by:", self)
        transport_label.setBuddy(self.transportCombo)
        top.addRow(transport_label, self.transportCombo)
        root.addLayout(top)

        self.twilioBox = QGroupBox("Twilio Messages API", self)
        self.twilioBox.setObjectName("smsTwilioBox")
        twilio = QFormLayout(self.twilioBox)
        self.accountSidEdit = self._line("smsAccountSidEdit", "Account SID", "AC followed by 32 hexadecimal digits")
        self.senderEdit = self._line("smsSenderEdit", "Sender", "+15551234567 or a Messaging Service SID (MG…)")
        self.apiBaseEdit = self._line("smsApiBaseEdit", "Web API address", "https://api.twilio.com")
        self.tokenEdit = self._line("smsTokenEdit", "Auth token", "kept in this computer's keyring")
        self.tokenEdit.setEchoMode(QLineEdit.EchoMode.Password)
        for caption, line in (
            ("Acc&ount SID:", self.accountSidEdit),
            ("Sender:", self.senderEdit),
            ("&Web API address:", self.apiBaseEdit),
            ("Auth to&ken:", self.tokenEdit),
        ):
            buddy_label = QLabel(caption, self.twilioBox)
            buddy_label.setBuddy(line)
            twilio.addRow(buddy_label, line)
        test_row = QHBoxLayout()
        self.testNumberEdit = self._line("smsTestNumberEdit", "Phone number for a test text", "+15551234567")
        test_label = QLabel("Send a test text &to:", self.twilioBox)
        test_label.setBuddy(self.testNumberEdit)
        self.testButton = QPushButton("Send test", self.twilioBox)
        self.testButton.setObjectName("smsTestButton")
        self.testButton.setAccessibleName("Send a test text message")
        self.testButton.clicked.connect(self.send_test)
        self.testNumberEdit.returnPressed.connect(self.send_test)
        test_row.addWidget(test_label)
        test_row.addWidget(self.testNumberEdit, 1)
        test_row.addWidget(self.testButton)
        twilio.addRow(test_row)
        root.addWidget(self.twilioBox)

        self.gatewayBox = QGroupBox("E-mail-to-SMS gateway", self)
        self.gatewayBox.setObjectName("smsGatewayBox")
        gateway = QVBoxLayout(self.gatewayBox)
        carriers_label = QLabel("&Carrier table (one 'Carrier name = gateway.domain' per line):", self.gatewayBox)
        self.carriersEdit = QPlainTextEdit(self.gatewayBox)
        self.carriersEdit.setObjectName("smsCarriersEdit")
        self.carriersEdit.setAccessibleName("Carrier table")
        self.carriersEdit.setTabChangesFocus(True)
        carriers_label.setBuddy(self.carriersEdit)
        gateway.addWidget(carriers_label)
        gateway.addWidget(self.carriersEdit)
        root.addWidget(self.gatewayBox, 1)

        limits = QFormLayout()
        self.segmentsSpin = QSpinBox(self)
        self.segmentsSpin.setObjectName("smsSegmentsSpin")
        self.segmentsSpin.setAccessibleName("Longest text in segments")
        self.segmentsSpin.setRange(1, MAX_SEGMENTS_LIMIT)
        self.segmentsSpin.setSuffix(" segments")
        limits.addRow("Cut texts longer than:", self.segmentsSpin)
        quiet = QHBoxLayout()
        self.quietStartEdit = QTimeEdit(self)
        self.quietStartEdit.setObjectName("smsQuietStartEdit")
        self.quietStartEdit.setAccessibleName("Quiet hours start")
        self.quietEndEdit = QTimeEdit(self)
        self.quietEndEdit.setObjectName("smsQuietEndEdit")
        self.quietEndEdit.setAccessibleName("Quiet hours end")
        for edit in (self.quietStartEdit, self.quietEndEdit):
            edit.setDisplayFormat(TIME_FORMAT)
        quiet_label = QLabel("&Quiet hours from:", self)
        quiet_label.setBuddy(self.quietStartEdit)
        quiet.addWidget(self.quietStartEdit)
        quiet.addWidget(QLabel("until", self))
        quiet.addWidget(self.quietEndEdit)
        quiet.addWidget(QLabel("(texts wait until the window opens; the same time twice: none)", self), 1)
        limits.addRow(quiet_label, quiet)
        root.addLayout(limits)

        bottom = QHBoxLayout()
        self.statusLabel = QLabel("", self)
        self.statusLabel.setObjectName("smsStatusLabel")
        self.statusLabel.setWordWrap(True)
        self.saveButton = QPushButton("Save SMS settin&gs", self)
        self.saveButton.setObjectName("smsSaveButton")
        self.saveButton.setAccessibleName("Save the SMS settings")
        self.saveButton.setAutoDefault(False)
        self.saveButton.clicked.connect(self.save)
        bottom.addWidget(self.statusLabel, 1)
        bottom.addWidget(self.saveButton)
        root.addLayout(bottom)
        self._on_transport_changed()
        self.reload()

    def _line(self, object_name: str, accessible: str, placeholder: str) -> QLineEdit:
        edit = QLineEdit(self)
        edit.setObjectName(object_name)
        edit.setAccessibleName(accessible)
        edit.setPlaceholderText(placeholder)
        return edit

    # ------------------------------------------------------------------------------------------------ loading

    @Slot()
    def reload(self) -> None:
        """Read the shared settings (and this computer's stored token) off the GUI thread."""
        self.saveButton.setEnabled(False)
        self.ctx.run(partial(_load, self.ctx.db), self.on_loaded, self.on_failed)

    @Slot(object)
    def on_loaded(self, loaded: object) -> None:
        """Show what was read."""
        if not shiboken6.isValid(self) or not isinstance(loaded, tuple):
            return
        settings, token = loaded
        self._base = settings
        self.transportCombo.setCurrentIndex(max(0, self.transportCombo.findData(settings.transport)))
        self.accountSidEdit.setText(settings.account_sid)
        self.senderEdit.setText(settings.sender)
        self.apiBaseEdit.setText(settings.api_base)
        self.tokenEdit.setText(token or "")
        self.carriersEdit.setPlainText(format_gateway_table(settings.gateways))
        self.segmentsSpin.setValue(settings.max_segments)
        self.quietStartEdit.setTime(QTime.fromString(settings.quiet_start.zfill(5), TIME_FORMAT))
        self.quietEndEdit.setTime(QTime.fromString(settings.quiet_end.zfill(5), TIME_FORMAT))
        self.saveButton.setEnabled(True)

    @Slot(object)
    def on_failed(self, error: object) -> None:
        """Say what went wrong; what was typed stays."""
        if not shiboken6.isValid(self):
            return
        self.saveButton.setEnabled(self._base is not None)
        self._status(False, str(error))

    @Slot()
    def _on_transport_changed(self) -> None:
        transport = self.transportCombo.currentData()
        self.twilioBox.setEnabled(transport == "twilio")
        self.gatewayBox.setEnabled(transport == "gateway")

    # ------------------------------------------------------------------------------------------------ saving

    def edited(self) -> tuple[SmsSettings, list[str]]:
        """The settings as typed, and the carrier-table lines that could not be read."""
        base = self._base or SmsSettings()
        gateways, problems = parse_gateway_table(self.carriersEdit.toPlainText())
        settings = replace(
            base,
            transport=self.transportCombo.currentData(),
            account_sid=self.accountSidEdit.text().strip(),
            sender=self.senderEdit.text().strip(),
            api_base=self.apiBaseEdit.text().strip(),
            max_segments=self.segmentsSpin.value(),
            quiet_start=self.quietStartEdit.time().toString(TIME_FORMAT),
            quiet_end=self.quietEndEdit.time().toString(TIME_FORMAT),
            gateways=gateways,
        )
        return settings, problems

    @Slot()
    def save(self) -> None:
        """Store the settings for every workstation and the token in this computer's keyring."""
        if self._base is None:
            return
        settings, problems = self.edited()
        if problems:
            self._status(False, "Not saved. Carrier table: " + " ".join(problems))
            return
        self.saveButton.setEnabled(False)
        self._status(True, "Saving…")
        job = partial(_save, self.ctx.db, self.ctx.staff_name, self._base, settings, self.tokenEdit.text())
        self.ctx.run(job, self.on_saved, self.on_failed)

    @Slot(object)
    def on_saved(self, saved: object) -> None:
        """Show the stored settings as the new base."""
        if not shiboken6.isValid(self) or not isinstance(saved, SmsSettings):
            return
        self._base = saved
        self.saveButton.setEnabled(True)
        self._status(True, "Saved for every workstation.")
        self.ctx.changed.emit("settings")

    @Slot()
    def send_test(self) -> None:
        """Send one test text with the settings as typed (not yet saved) and show the provider's answer."""
        settings, _problems = self.edited()
        number = self.testNumberEdit.text().strip()
        if not number:
            self._status(False, "Enter the phone number for the test text (international form, +15551234567).")
            return
        self.testButton.setEnabled(False)
        self._status(True, f"Sending a test text to {number}…")
        job = partial(send_test_sms, settings, self.tokenEdit.text().strip() or None, number)
        self.ctx.run(job, self.on_tested, self.on_test_failed)

    @Slot(object)
    def on_tested(self, result: object) -> None:
        """The provider's answer."""
        if not shiboken6.isValid(self) or not isinstance(result, TestSmsResult):
            return
        self.testButton.setEnabled(True)
        self._status(result.ok, result.message)

    @Slot(object)
    def on_test_failed(self, error: object) -> None:
        """An unexpected failure of the test (the keyring, say)."""
        if not shiboken6.isValid(self):
            return
        self.testButton.setEnabled(True)
        self._status(False, str(error))

    def _status(self, ok: bool, message: str) -> None:
        self.statusLabel.setText(message)
        self.statusLabel.setProperty("problem", not ok)
        set_tone(self.statusLabel, None if ok else Tone.ERROR)  # readable in any palette


def _load(db: Database) -> tuple[SmsSettings, str | None]:
    settings = load_sms_settings(db)
    try:
        token = auth_token(settings, allow_env=False)
    except RuntimeError:
        token = None  # no keyring on this computer: the page still opens; saving says why
    return settings, token


def _save(db: Database, staff: str, base: SmsSettings, settings: SmsSettings, token: str) -> SmsSettings:
    saved = save_sms_settings(db, base, settings, changed_by=staff)
    if saved.transport == "twilio" and saved.account_sid:
        store_auth_token(saved, token.strip())
    return saved
