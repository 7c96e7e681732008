"""The "CA certificate file" setting: typed in Settings or given as ``CALLSLIP_SMTP_CA_FILE``, it makes a server
certified by an internal authority trusted, and Test Connection tells "not trusted" apart from the rest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from desktop.config import load_settings
from desktop.ui.admin.settings_dialog import SettingsDialog
from desktop.ui.context import AppContext
from tests.cm_helpers import ctx
from tests.smtp_sink import SmtpSink

__all__ = ["ctx"]


@pytest.fixture
def internal_ca_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    sink = SmtpSink(tls="starttls", credentials=("u", "pw"), cert_dir=tmp_path).start()
    yield sink
    sink.stop()


def test_the_environment_names_a_ca_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLSLIP_SMTP_CA_FILE", str(tmp_path / "ca.pem"))
    assert load_settings().smtp_ca_file == str(tmp_path / "ca.pem")


def test_settings_dialog_ca_file_makes_test_connection_trust_the_server(
    qtbot: QtBot, ctx: AppContext, internal_ca_sink: SmtpSink
) -> None:
    dialog = SettingsDialog(ctx)  # no test SSL context: only the setting can make the certificate trusted
    qtbot.addWidget(dialog)
    dialog.smtpHostEdit.setText("127.0.0.1")
    dialog.smtpPortSpin.setValue(internal_ca_sink.port)
    dialog.smtpSecurityCombo.setCurrentIndex(dialog.smtpSecurityCombo.findData("starttls"))
    dialog.smtpUserEdit.setText("u")
    dialog.smtpPasswordEdit.setText("pw")
    assert dialog.smtpCaFileEdit.accessibleName() == "CA certificate file"
    dialog.testSmtpButton.click()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20_000)
    refused = dialog.smtpResultLabel.text()
    assert "not trusted" in refused and "CA certificate file" in refused, refused
    dialog.smtpCaFileEdit.setText(str(internal_ca_sink.cafile))
    dialog.testSmtpButton.click()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20_000)
    trusted = dialog.smtpResultLabel.text()
    assert trusted.startswith("✔"), trusted
    assert dialog.settings_from_form().smtp_ca_file == str(internal_ca_sink.cafile)
    dialog.done(0)
