"""The bounce flag in the desk's windows: the Contact Info tab shows it and clears it; the Bounced addresses
list shows every flagged address with its patron, opens the patron and clears the flag."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.config import Settings, config_path, load_settings
from desktop.db.engine import Database
from desktop.db.models import ContactPoint
from desktop.secrets import BOUNCE_IMAP_KEYRING_SERVICE, bounce_imap_password
from desktop.ui.admin.settings_dialog import SettingsDialog
from desktop.ui.context import AppContext
from desktop.ui.patrons.bounced_view import open_bounced_view
from desktop.ui.patrons.contact_info_tab import NOTES
from desktop.ui.patrons.patron_record import PatronRecordWindow, open_patron_record
from tests.conftest import MemoryKeyring
from tests.patron_helpers import make_patron, points_of

WHEN = datetime(2026, 11, 30, 7, 50, tzinfo=UTC)


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings, qtbot: QtBot) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, settings)
    yield context
    for widget in QApplication.topLevelWidgets():
        if widget.objectName() in {"patronRecord", "bouncedView", "contactCard"}:
            widget.close()
            widget.deleteLater()
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


def test_settings_store_the_bounce_mailbox_and_its_password_in_the_keyring_only(
    qtbot: QtBot, ctx: AppContext, db_path: Path, memory_keyring: MemoryKeyring
) -> None:
    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: not dialog.busy)
    assert not dialog.bounceVerpCheck.isChecked(), "off by default"
    dialog.sqlitePathEdit.setText(str(db_path))
    dialog.bounceHostEdit.setText(" imap.library.example.org ")
    dialog.bounceUserEdit.setText("ill@library.example.org")
    dialog.bouncePasswordEdit.setText("bounce-secret-1")
    dialog.bounceFolderEdit.setText("")
    dialog.bounceDoneFolderEdit.setText("Handled")
    dialog.bounceVerpCheck.setChecked(True)
    dialog.saveButton.click()
    qtbot.waitUntil(lambda: dialog.saved_settings is not None, timeout=10_000)
    saved = load_settings()
    assert (saved.bounce_imap_host, saved.bounce_imap_port, saved.bounce_imap_user) == (
        "imap.library.example.org",
        993,
        "ill@library.example.org",
    )
    assert (saved.bounce_imap_folder, saved.bounce_imap_done_folder, saved.bounce_verp) == ("INBOX", "Handled", True)
    key = (BOUNCE_IMAP_KEYRING_SERVICE, "ill@library.example.org@imap.library.example.org")
    assert memory_keyring.store[key] == "bounce-secret-1"
    assert bounce_imap_password(saved, allow_env=False) == "bounce-secret-1"
    assert b"bounce-secret-1" not in config_path().read_bytes()
    dialog.done(0)


def test_contact_card_shows_the_flag_and_clears_it(ctx: AppContext, qtbot: QtBot, sqlite_db: Database) -> None:
    from desktop.ui.patrons.contact_card import open_contact_card

    ada = make_patron(sqlite_db, "ada", "Ada", "Lovelace", emails=[("Home", "ada@example.org"), ("Work", "a@w.org")])
    flag(sqlite_db, points_of(sqlite_db, ada, "email")[0].id)
    card = open_contact_card(ctx, ada)
    qtbot.waitUntil(lambda: len(card.editors["email"]) == 2, timeout=5000)
    flagged, clean = card.editors["email"]
    assert flagged.bounce.text() == "⚠ bounced on 2026-11-30: 550 5.1.1 user unknown"
    assert not flagged.clear_bounce.isHidden() and clean.clear_bounce.isHidden() and clean.bounce.isHidden()
    flagged.clear_bounce.click()
    qtbot.waitUntil(lambda: flagged.clear_bounce.isHidden(), timeout=5000)
    assert flagged.bounce.isHidden()
    assert points_of(sqlite_db, ada, "email")[0].bounced_at is None
    # Clearing told every window (this card too) that patrons changed: let its reload and checks finish.
    qtbot.waitUntil(lambda: not card.warning_timer.isActive() and not ctx.runner.busy, timeout=5000)
