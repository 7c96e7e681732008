"""The ILLiad import dialog and the Customization Manager's template conversion, as staff use them (pytest-qt,
real SQLite file, realistic exports from ``tests/illiad_fixtures.py``). Screenshots go to ``docs/``."""

# Fixtures are imported from tests/cm_helpers.py; test arguments name them (F811).
# ruff: noqa: F811

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select

from desktop.db.models import Request
from desktop.ui.admin.customization_manager import CustomizationManager
from desktop.ui.admin.illiad_import_wizard import IllIadImportDialog
from desktop.ui.admin.import_dialog import ImportDialog
from desktop.ui.context import AppContext
from tests import illiad_fixtures
from tests.cm_helpers import close_manager, ctx, manager  # noqa: F401

SCREENSHOTS = os.environ.get("CALLSLIP_SCREENSHOTS")


def _requests(ctx: AppContext) -> int:
    with ctx.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Request)) or 0)


@pytest.fixture
def wizard(qtbot: QtBot, ctx: AppContext) -> Iterator[IllIadImportDialog]:
    window = IllIadImportDialog(ctx)
    qtbot.addWidget(window)
    window.show()
    yield window
    qtbot.waitUntil(lambda: not window.busy)
    window.done(0)


def test_folder_then_dry_run_report_then_import(qtbot: QtBot, ctx: AppContext, wizard: IllIadImportDialog,
                                                tmp_path: Path) -> None:  # fmt: skip
    folder = illiad_fixtures.generate(tmp_path / "illiad")
    assert not wizard.importButton.isEnabled()
    wizard.dryRunButton.click()  # no folder yet
    assert "Choose the folder" in wizard.summaryLabel.text()
    wizard.folderEdit.setText(str(folder))
    wizard.dryRunButton.click()
    qtbot.waitUntil(lambda: not wizard.busy, timeout=20_000)
    report = wizard.reportView.toPlainText()
    assert "ILLiad import (dry run, nothing written)" in report
    assert "Users: Users.csv (UTF-16 LE with BOM)" in report and "Refused rows: 8" in report
    assert '"Awaiting Post Receipt Processing" = "Request Sent"' in report
    assert _requests(ctx) == 0 and wizard.importButton.isEnabled()
    if SCREENSHOTS:
        wizard.grab().save(str(Path(SCREENSHOTS) / "illiad_import_dry_run.png"))
    wizard.folderEdit.setText(str(folder) + " ")  # any change: the report no longer holds
    assert not wizard.importButton.isEnabled()
    wizard.folderEdit.setText(str(folder))
    wizard.dryRunButton.click()
    qtbot.waitUntil(lambda: not wizard.busy, timeout=20_000)
    wizard.importButton.click()
    qtbot.waitUntil(lambda: not wizard.busy, timeout=20_000)
    assert _requests(ctx) == 10
    assert wizard.summaryLabel.text().startswith("✔ Imported; 8 row(s) refused")


def test_a_folder_without_exports_is_explained(qtbot: QtBot, wizard: IllIadImportDialog, tmp_path: Path) -> None:
    wizard.folderEdit.setText(str(tmp_path))
    wizard.dryRunButton.click()
    qtbot.waitUntil(lambda: not wizard.busy, timeout=20_000)
    assert wizard.summaryLabel.text().startswith(f"✖ Nothing was imported: {tmp_path} holds no ILLiad export")
    assert not wizard.importButton.isEnabled()


def test_import_dialog_opens_the_illiad_wizard(qtbot: QtBot, ctx: AppContext) -> None:
    dialog = ImportDialog(ctx)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.illiadButton.click()
    opened = [w for w in dialog.findChildren(IllIadImportDialog)]
    assert len(opened) == 1
    opened[0].done(0)
    dialog.done(0)


def test_customization_manager_converts_illiad_templates(qtbot: QtBot, manager: CustomizationManager,
                                                         tmp_path: Path) -> None:  # fmt: skip
    export = tmp_path / "templates.csv"
    export.write_text(
        'Name,Subject,Email Text\r\nILL Borrowing Loan Pickup,Ready: <#Transaction.LoanTitle MaxSize="30">,'
        "Dear <#User.FirstName> <#STATUS>\r\n",
        encoding="utf-16",
    )
    manager.convert_illiad_templates(export)
    qtbot.waitUntil(lambda: manager.illiadResult.isVisible(), timeout=20_000)
    assert manager.illiadResult.toPlainText().splitlines() == [
        "ILL Borrowing Loan Pickup → Loan Pickup: imported",
        "  problem: body_text line 1: <#STATUS> is a web-page tag, not a notification field: kept as text",
    ]
    if SCREENSHOTS:
        manager.grab().save(str(Path(SCREENSHOTS) / "illiad_templates_converted.png"))
