"""The Contact Card's Channels section, driven from the keyboard as staff would (pytest-qt, real SQLite file, the
card's real worker thread; another workstation is a second AppContext on the same file)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import Patron, PatronHistory
from desktop.domain.channels import Channel, NoticeEvent
from desktop.services.admin.sms_settings import load_sms_settings, save_sms_settings
from desktop.services.patrons.channel_preferences import load_preferences, save_preferences
from desktop.ui.context import AppContext
from desktop.ui.patrons.channel_preferences_editor import ChannelList
from desktop.ui.patrons.contact_card import ContactCard, open_contact_card
from tests.patron_helpers import make_patron

READY, REMINDER, RESET = NoticeEvent.READY_FOR_PICKUP, NoticeEvent.PICKUP_REMINDER, NoticeEvent.PASSWORD_RESET


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings, qtbot: QtBot) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, settings)
    yield context
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, ContactCard):
            widget._discarding = True  # a test's unsaved card closes without asking
            widget.close()
            widget.deleteLater()
    context.shutdown()


@pytest.fixture
def cara(sqlite_db: Database) -> int:
    return make_patron(
        sqlite_db,
        "cara",
        "Cara",
        "Mobile",
        emails=[("Home", "cara@example.org")],
        phones=[("Home", "217 555 0101"), ("Cell", "217 555 0199")],
    )


def open_card(ctx: AppContext, qtbot: QtBot, patron_id: int) -> ContactCard:
    card = open_contact_card(ctx, patron_id)
    qtbot.waitUntil(lambda: card.data is not None, timeout=5000)
    return card


def save(card: ContactCard, qtbot: QtBot) -> None:
    assert card.save_button.isEnabled(), card.hint.text()
    with qtbot.waitSignal(card.saved, timeout=5000):
        card.save_button.click()


def channels_shown(channel_list: ChannelList) -> list[str]:
    return [channel_list.item(row).text() for row in range(channel_list.count())]


def test_reordering_an_event_from_the_keyboard_is_saved_and_shown_again(
    ctx: AppContext, qtbot: QtBot, cara: int, sqlite_db: Database
) -> None:
    card = open_card(ctx, qtbot, cara)
    row = card.channels_editor.rows[READY]
    assert row.following and channels_shown(row.list) == ["1 · E-Mail", "SMS", "Phone", "Mail"]
    row.list.setFocus()
    qtbot.keyClick(row.list, Qt.Key.Key_Right)  # to SMS
    qtbot.keyClick(row.list, Qt.Key.Key_Space)  # tick it: tried after E-Mail
    assert channels_shown(row.list) == ["1 · E-Mail", "2 · SMS", "Phone", "Mail"]
    qtbot.keyClick(row.list, Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier)  # SMS first
    assert channels_shown(row.list) == ["1 · SMS", "2 · E-Mail", "Phone", "Mail"]
    assert row.message.text() == "Own order: SMS, else E-Mail."
    assert not row.following and row.follow.isEnabled()
    save(card, qtbot)

    prefs = load_preferences(sqlite_db, cara)
    assert prefs.channels[READY] == (Channel.SMS, Channel.EMAIL)
    assert prefs.stored == {READY}  # the other events still follow the method
    with sqlite_db.read() as session:
        lines = session.scalars(select(PatronHistory).where(PatronHistory.patron_id == cara)).all()
        assert [(h.field, h.old_value, h.new_value, h.changed_by) for h in lines] == [
            ("channels: Item ready for pickup", "E-Mail", "SMS>E-Mail", "tester")
        ]
    again = open_card(ctx, qtbot, cara)
    assert again is not card
    shown = again.channels_editor.rows[READY]
    assert channels_shown(shown.list) == ["1 · SMS", "2 · E-Mail", "Phone", "Mail"]
    assert not shown.following and shown.message.text() == "Own order: SMS, else E-Mail."
    assert "Item ready for pickup: E-Mail → SMS>E-Mail · tester" in again.history_label.text()
    assert not again.save_button.isEnabled()  # nothing changed yet


def test_an_event_without_a_row_follows_the_method_shown_on_the_card(
    ctx: AppContext, qtbot: QtBot, sqlite_db: Database
) -> None:
    patron = make_patron(sqlite_db, "pat", emails=[("Home", "pat@example.org")], phones=[("Home", "217 555 0110")],
                         notification_method="Phone")  # fmt: skip
    card = open_card(ctx, qtbot, patron)
    row = card.channels_editor.rows[REMINDER]
    assert row.message.text() == "Follows the notification method (Phone)."
    assert channels_shown(row.list)[0] == "1 · Phone" and not row.follow.isEnabled()
    reset = card.channels_editor.rows[RESET]
    assert reset.message.text() == "Follows the notification method (E-Mail)."  # a reset is always e-mailed
    card.notification_combo.setCurrentIndex(card.notification_combo.findData("Mail"))
    assert row.message.text() == "Follows the notification method (Mail)."
    assert channels_shown(row.list)[0] == "1 · Mail"
    # Choosing an own order and then "Follow method" goes back to following.
    row.list.setFocus()
    qtbot.keyClick(row.list, Qt.Key.Key_Right)
    qtbot.keyClick(row.list, Qt.Key.Key_Space)
    assert row.message.text().startswith("Own order: Mail, else ")
    row.follow.click()
    assert row.following and row.message.text() == "Follows the notification method (Mail)."


def test_a_password_reset_without_email_shows_the_problem_and_saves_nothing(
    ctx: AppContext, qtbot: QtBot, cara: int, sqlite_db: Database
) -> None:
    version = load_preferences(sqlite_db, cara).version
    card = open_card(ctx, qtbot, cara)
    row = card.channels_editor.rows[RESET]
    row.list.setFocus()
    qtbot.keyClick(row.list, Qt.Key.Key_Space)  # untick E-Mail
    qtbot.keyClick(row.list, Qt.Key.Key_Right)
    qtbot.keyClick(row.list, Qt.Key.Key_Space)  # tick SMS
    assert row.message.property("state") == "error"
    assert row.message.text() == (
        "Password reset: the reset link can only be e-mailed, so E-Mail must be one of the channels."
    )
    assert not card.save_button.isEnabled()
    assert card.hint.text().startswith("Fix first: Channels: Password reset: the reset link")
    card.on_save()  # what Ctrl+S does
    assert load_preferences(sqlite_db, cara).version == version  # nothing saved
    assert card.isVisible() and card.channels_editor.rows[RESET].channels() == (Channel.SMS,)  # kept as typed
    # Ticking E-Mail again makes it savable.
    qtbot.keyClick(row.list, Qt.Key.Key_Left)
    qtbot.keyClick(row.list, Qt.Key.Key_Space)
    assert row.message.property("state") == "ok" and card.save_button.isEnabled()


def test_a_save_after_another_workstation_saved_keeps_the_typed_choice(
    ctx: AppContext, qtbot: QtBot, cara: int, sqlite_db: Database
) -> None:
    card = open_card(ctx, qtbot, cara)
    # Another workstation changes the reminder and the carrier meanwhile.
    theirs = load_preferences(sqlite_db, cara)
    save_preferences(sqlite_db, cara, theirs.version, {REMINDER: (Channel.SMS, Channel.EMAIL)}, staff="front desk")
    row = card.channels_editor.rows[READY]
    row.list.setFocus()
    qtbot.keyClick(row.list, Qt.Key.Key_Right)
    qtbot.keyClick(row.list, Qt.Key.Key_Right)
    qtbot.keyClick(row.list, Qt.Key.Key_Space)  # Phone after E-Mail
    qtbot.keyClicks(card.channels_editor.carrier_combo, "Cricket")
    card.on_save()
    qtbot.waitUntil(card.reload_button.isVisible, timeout=5000)
    assert "changed on another workstation" in card.banner.text()
    assert row.channels() == (Channel.EMAIL, Channel.PHONE)  # still as chosen
    assert load_preferences(sqlite_db, cara).channels[READY] == (Channel.EMAIL,)
    card.reload_button.click()
    qtbot.waitUntil(lambda: not card.reload_button.isVisible(), timeout=5000)
    editor = card.channels_editor
    assert editor.rows[READY].channels() == (Channel.EMAIL, Channel.PHONE)  # mine kept
    assert editor.rows[REMINDER].channels() == (Channel.SMS, Channel.EMAIL)  # theirs taken in
    assert editor.carrier() == "Cricket"
    save(card, qtbot)
    prefs = load_preferences(sqlite_db, cara)
    assert prefs.channels[READY] == (Channel.EMAIL, Channel.PHONE)
    assert prefs.channels[REMINDER] == (Channel.SMS, Channel.EMAIL)
    with sqlite_db.read() as session:
        assert session.scalar(select(Patron.sms_carrier).where(Patron.id == cara)) == "Cricket"


def test_sms_without_a_mobile_number_warns(ctx: AppContext, qtbot: QtBot, sqlite_db: Database) -> None:
    patron = make_patron(sqlite_db, "nomo", emails=[("Home", "nomo@example.org")])
    card = open_card(ctx, qtbot, patron)
    editor = card.channels_editor
    assert editor.sms_number_label.text() == "no phone on the card" and editor.sms_warning.isHidden()
    row = editor.rows[READY]
    row.list.setFocus()
    qtbot.keyClick(row.list, Qt.Key.Key_Right)
    qtbot.keyClick(row.list, Qt.Key.Key_Space)
    assert editor.sms_warning.isVisible()
    assert "SMS is chosen but the card has no mobile number" in editor.sms_warning.text()
    assert card.save_button.isEnabled()  # a warning, not a block
    phone = card.add_field("phone", None)
    assert phone is not None
    phone.location.setCurrentIndex(phone.location.findText("Cell"))
    qtbot.keyClicks(phone.value, "217 555 0177")
    assert editor.sms_number_label.text() == "(217) 555-0177 (Cell)"
    assert editor.sms_warning.isHidden()


def test_the_carrier_is_chosen_saved_with_history_and_the_gateway_warning_goes(
    ctx: AppContext, qtbot: QtBot, cara: int, sqlite_db: Database
) -> None:
    sms = load_sms_settings(sqlite_db)
    save_sms_settings(sqlite_db, sms, replace(sms, transport="gateway"), changed_by="admin")
    save_preferences(sqlite_db, cara, load_preferences(sqlite_db, cara).version, {READY: (Channel.SMS,)}, staff="a")
    card = open_card(ctx, qtbot, cara)
    editor = card.channels_editor
    assert editor.sms_number_label.text() == "(217) 555-0199 (Cell)"
    assert "needs the patron's carrier" in editor.sms_warning.text()
    combo = editor.carrier_combo
    assert combo.findText("Verizon") > 0  # from the shared carrier table
    combo.setFocus()
    qtbot.keyClicks(combo, "Verizon")
    assert editor.sms_warning.isHidden()
    save(card, qtbot)
    with sqlite_db.read() as session:
        patron = session.get(Patron, cara)
        assert patron is not None and patron.sms_carrier == "Verizon"
        line = session.scalars(select(PatronHistory).where(PatronHistory.field == "sms_carrier")).one()
        assert (line.old_value, line.new_value, line.changed_by) == ("", "Verizon", "tester")
    again = open_card(ctx, qtbot, cara)
    assert again.channels_editor.carrier() == "Verizon"
    assert "SMS carrier: (none) → Verizon · tester" in again.history_label.text()


def test_earlier_and_later_move_the_marked_channel(ctx: AppContext, qtbot: QtBot, cara: int) -> None:
    card = open_card(ctx, qtbot, cara)
    row = card.channels_editor.rows[NoticeEvent.CANCELLATION]
    assert not row.earlier.isEnabled() and not row.later.isEnabled()  # nothing marked yet
    phone = row.list.item(2)
    qtbot.mouseClick(row.list.viewport(), Qt.MouseButton.LeftButton, pos=row.list.visualItemRect(phone).center())
    assert row.list.currentItem() is phone and row.earlier.isEnabled()
    row.earlier.click()
    row.earlier.click()
    assert channels_shown(row.list) == ["Phone", "1 · E-Mail", "SMS", "Mail"]
    assert not row.earlier.isEnabled() and row.later.isEnabled()  # Phone is first now
    row.list.item(0).setCheckState(Qt.CheckState.Checked)
    assert row.channels() == (Channel.PHONE, Channel.EMAIL)
    assert row.message.text() == "Own order: Phone, else E-Mail."
    row.later.click()
    assert row.channels() == (Channel.EMAIL, Channel.PHONE)
