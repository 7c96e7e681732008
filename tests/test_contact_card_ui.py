"""Contact Info tab and Contact Card, driven as staff would (pytest-qt, real SQLite file, real worker thread)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.engine import Database, sqlite_url
from desktop.services.database import open_database
from desktop.ui.context import AppContext
from desktop.ui.patrons.contact_card import ContactCard, PointEditor
from desktop.ui.patrons.contact_info_tab import LOCATION, PRIMARY, TYPE, VALUE, PrimaryRole
from desktop.ui.patrons.patron_record import PatronRecordWindow, open_patron_record
from desktop.ui.widgets.icons import icon
from tests.patron_helpers import make_patron, points_of, primary_count


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings, qtbot: QtBot) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, settings)
    yield context
    for widget in QApplication.topLevelWidgets():
        if widget.objectName() in {"patronRecord", "contactCard", "duplicatesView"}:
            widget.close()
            widget.deleteLater()  # a card with unsaved changes asks instead of closing
    context.shutdown()


@pytest.fixture
def ada(sqlite_db: Database) -> int:
    return make_patron(
        sqlite_db,
        "ada",
        "Ada",
        "Lovelace",
        household_code="H1",
        emails=[("Home", "ada@example.org"), ("Work", "ada@work.example.edu")],
        phones=[("Home", "217 555 0101")],
    )


def open_record(ctx: AppContext, qtbot: QtBot, patron_id: int) -> PatronRecordWindow:
    window = open_patron_record(ctx, patron_id)
    qtbot.waitUntil(lambda: window.record is not None, timeout=5000)
    return window


def the_card(qtbot: QtBot) -> ContactCard:
    cards: list[ContactCard] = []

    def found() -> bool:
        cards[:] = [w for w in QApplication.topLevelWidgets() if isinstance(w, ContactCard) and w.isVisible()]
        return bool(cards) and cards[0].data is not None

    qtbot.waitUntil(found, timeout=5000)
    return cards[0]


def rows(window: PatronRecordWindow) -> list[tuple[str, str, str, bool]]:
    model = window.contact_tab.model
    return [
        (
            str(model.data(model.index(r, TYPE), Qt.ItemDataRole.AccessibleTextRole)),
            str(model.data(model.index(r, LOCATION))),
            str(model.data(model.index(r, VALUE))),
            bool(model.data(model.index(r, PRIMARY), PrimaryRole)),
        )
        for r in range(model.rowCount())
    ]


def test_record_shows_the_contact_points(ctx: AppContext, qtbot: QtBot, ada: int, qtmodeltester: object) -> None:
    window = open_record(ctx, qtbot, ada)
    assert window.objectName() == "patronRecord"
    assert rows(window) == [
        ("E-mail", "Home", "ada@example.org", True),
        ("E-mail", "Work", "ada@work.example.edu", False),
        ("Phone", "Home", "(217) 555-0101", True),
    ]
    model = window.contact_tab.model
    assert not model.data(model.index(0, TYPE), Qt.ItemDataRole.DecorationRole).isNull()
    assert not model.data(model.index(0, PRIMARY), Qt.ItemDataRole.DecorationRole).isNull()
    assert model.data(model.index(1, PRIMARY), Qt.ItemDataRole.DecorationRole) is None
    qtmodeltester.check(model)  # type: ignore[attr-defined]
    for name in ("contactInfoTab", "contactInfoTable", "openContactCardButton", "addContactButton",
                 "removeContactButton", "makePrimaryButton", "resetPasswordButton"):  # fmt: skip
        assert window.findChild(object, name) is not None, name


def test_add_an_email_from_the_add_menu_and_save(ctx: AppContext, qtbot: QtBot, ada: int, sqlite_db: Database) -> None:
    window = open_record(ctx, qtbot, ada)
    tab = window.contact_tab
    menu_names = [a.objectName() for a in tab.add_menu.actions()]
    assert menu_names[0] == "addEmailAction" and "addFaxAction" in menu_names and "addWebAction" in menu_names
    phone_menu = tab.add_menu.findChild(object, "addPhoneMenu")
    assert [a.text() for a in phone_menu.actions()] == ["Home", "Work", "Cell", "Emergency", "Other"]  # type: ignore[attr-defined]
    next(a for a in tab.add_menu.actions() if a.objectName() == "addEmailAction").trigger()
    card = the_card(qtbot)
    assert card.objectName() == "contactCard"
    qtbot.waitUntil(lambda: len(card.editors["email"]) == 3)
    editor = card.editors["email"][-1]
    assert editor.value.text() == "" and editor.location.currentText() == "Home"  # the default for e-mail
    qtbot.waitUntil(lambda: card.focusWidget() is editor.value)  # the new field has the cursor
    assert not card.save_button.isEnabled()  # an empty field is not saved
    qtbot.keyClicks(editor.value, "Ada.L@Example.ORG")
    editor.location.setCurrentIndex(editor.location.findText("Other"))
    assert card.save_button.isEnabled()
    with qtbot.waitSignal(card.saved, timeout=5000):
        qtbot.mouseClick(card.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(rows(window)) == 4, timeout=5000)
    assert rows(window)[2] == ("E-mail", "Other", "Ada.L@example.org", False)
    model = tab.model
    assert model.data(model.index(2, TYPE), Qt.ItemDataRole.DecorationRole).cacheKey() == icon("email").cacheKey()
    assert model.data(model.index(3, TYPE), Qt.ItemDataRole.DecorationRole).cacheKey() == icon("phone").cacheKey()
    assert model.data(model.index(2, TYPE), Qt.ItemDataRole.ToolTipRole) == "E-mail"
    saved = points_of(sqlite_db, ada, "email")[-1]
    assert (saved.value, saved.normalized) == ("Ada.L@example.org", "ada.l@example.org")


def test_add_a_work_phone_from_the_phone_flyout(ctx: AppContext, qtbot: QtBot, ada: int, sqlite_db: Database) -> None:
    window = open_record(ctx, qtbot, ada)
    phone_menu = window.contact_tab.add_menu.findChild(object, "addPhoneMenu")
    work = next(a for a in phone_menu.actions() if a.text() == "Work")  # type: ignore[attr-defined]
    work.trigger()
    card = the_card(qtbot)
    qtbot.waitUntil(lambda: len(card.editors["phone"]) == 2)
    editor = card.editors["phone"][-1]
    assert editor.location.currentText() == "Work"
    qtbot.keyClicks(editor.value, "217.555.0142 x7")
    assert "saved as +12175550142" in editor.message.text()
    with qtbot.waitSignal(card.saved, timeout=5000):
        card.save_button.click()
    qtbot.waitUntil(lambda: len(rows(window)) == 4, timeout=5000)
    assert rows(window)[3] == ("Phone", "Work", "(217) 555-0142 ext. 7", False)
    phone = points_of(sqlite_db, ada, "phone")[-1]
    assert (phone.normalized, phone.extension) == ("+12175550142", "7")


def test_make_another_email_primary_moves_the_marker(
    ctx: AppContext, qtbot: QtBot, ada: int, sqlite_db: Database
) -> None:
    window = open_record(ctx, qtbot, ada)
    tab = window.contact_tab
    tab.table.selectRow(0)
    assert not tab.primary_button.isEnabled()  # already primary
    tab.table.selectRow(1)
    assert tab.primary_button.isEnabled()
    qtbot.mouseClick(tab.primary_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: [r[3] for r in rows(window)] == [False, True, True], timeout=5000)
    assert primary_count(sqlite_db, ada, "email") == 1
    assert [p.is_primary for p in points_of(sqlite_db, ada, "email")] == [False, True]
    assert tab.current_row() is not None and tab.current_row().value == "ada@work.example.edu"  # type: ignore[union-attr]
    assert not tab.primary_button.isEnabled()


def test_remove_the_primary_after_confirmation_promotes_the_next(
    ctx: AppContext, qtbot: QtBot, ada: int, sqlite_db: Database
) -> None:
    window = open_record(ctx, qtbot, ada)
    tab = window.contact_tab
    tab.table.selectRow(0)
    tab.remove_button.click()
    box = tab.confirm_box
    assert box is not None and "ada@work.example.edu will become the primary e-mail" in box.text()
    box.button(box.StandardButton.Cancel).click()
    qtbot.wait(50)
    assert len(points_of(sqlite_db, ada, "email")) == 2  # cancelled: nothing removed
    tab.table.selectRow(0)
    tab.remove_button.click()
    box = tab.confirm_box
    assert box is not None
    box.findChild(object, "confirmButton").click()  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: len(rows(window)) == 2, timeout=5000)
    assert rows(window)[0] == ("E-mail", "Work", "ada@work.example.edu", True)
    assert primary_count(sqlite_db, ada, "email") == 1


def test_invalid_phone_disables_save_with_the_message_and_keeps_the_text(
    ctx: AppContext, qtbot: QtBot, ada: int
) -> None:
    window = open_record(ctx, qtbot, ada)
    window.contact_tab.table.selectRow(2)
    window.contact_tab.open_button.click()
    card = the_card(qtbot)
    editor: PointEditor = card.editors["phone"][0]
    editor.value.selectAll()
    qtbot.keyClicks(editor.value, "555-01")
    assert not card.save_button.isEnabled()
    assert editor.message.text().startswith("Not a valid phone number for region US")
    qtbot.waitUntil(editor.message.isVisible, timeout=2000)
    assert card.hint.text().startswith("Fix first: Phone 1: Not a valid phone number")
    assert editor.value.property("invalid") is True
    card.on_save()  # Ctrl+S while invalid does nothing
    assert card.isVisible() and editor.value.text() == "555-01"
    qtbot.keyClicks(editor.value, "99")  # 555-0199: still no area code
    assert not card.save_button.isEnabled()
    editor.value.setText("(217) 555-0199")
    assert card.save_button.isEnabled() and card.hint.text() == ""
    assert editor.message.text() == "Saved as +12175550199"


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("email", "ada@", "Not a valid e-mail address"),
        ("web", "https://", "needs a host name"),
        ("fax", "fax me", "Not a phone number"),
    ],
)
def test_every_kind_shows_its_own_message(
    ctx: AppContext, qtbot: QtBot, ada: int, kind: str, text: str, message: str
) -> None:
    open_record(ctx, qtbot, ada)
    from desktop.ui.patrons.contact_card import open_contact_card

    open_contact_card(ctx, ada, add=(kind, None))
    card = the_card(qtbot)
    qtbot.waitUntil(lambda: bool(card.editors[kind]))
    editor = card.editors[kind][-1]
    qtbot.keyClicks(editor.value, text)
    assert message in editor.message.text()
    assert not card.save_button.isEnabled()


def test_second_workstation_saving_an_old_version_is_refused_and_keeps_its_text(
    db_path: Path, ada: int, settings: Settings, qtbot: QtBot, sqlite_db: Database
) -> None:
    other_db, _ = open_database(sqlite_url(db_path))
    first, second = AppContext(sqlite_db, settings), AppContext(other_db, settings.with_changes(staff_name="other"))
    try:
        from desktop.ui.patrons.contact_card import open_contact_card

        card1 = open_contact_card(first, ada)
        card2 = open_contact_card(second, ada)
        assert card1 is not card2
        qtbot.waitUntil(lambda: card1.data is not None and card2.data is not None, timeout=5000)
        card1.editors["email"][0].value.setText("first@example.org")
        card2.editors["email"][1].value.setText("second@example.org")
        card2.address_fields["city"].setText("Urbana")
        with qtbot.waitSignal(card1.saved, timeout=5000):
            card1.save_button.click()
        card2.save_button.click()
        qtbot.waitUntil(lambda: "changed on another workstation" in card2.banner.text(), timeout=5000)
        assert card2.isVisible()
        assert card2.editors["email"][1].value.text() == "second@example.org"
        assert card2.address_fields["city"].text() == "Urbana"
        assert card2.save_button.isEnabled() and card2.reload_button.isVisible()  # nothing lost
        assert card2.reload_button.isDefault() and not card2.save_button.isDefault()  # Enter reloads
        saved = [p.normalized for p in points_of(sqlite_db, ada, "email")]
        assert saved == ["first@example.org", "ada@work.example.edu"]
        card2.close()
        assert card2.isVisible() and card2.discard_box is not None  # unsaved: it asks first
        card2.discard_box.button(card2.discard_box.StandardButton.Cancel).click()
        # Reload takes in the first workstation's e-mail and keeps this card's two changes on top.
        card2.reload_button.click()
        qtbot.waitUntil(lambda: "taken in" in card2.banner.text(), timeout=5000)
        assert [e.value.text() for e in card2.editors["email"]] == ["first@example.org", "second@example.org"]
        assert card2.address_fields["city"].text() == "Urbana" and not card2.reload_button.isVisible()
        assert card2.save_button.isDefault()
        with qtbot.waitSignal(card2.saved, timeout=5000):
            card2.save_button.click()
        saved = [p.normalized for p in points_of(sqlite_db, ada, "email")]
        assert saved == ["first@example.org", "second@example.org"]
    finally:
        first.shutdown()
        second.shutdown()
        other_db.dispose()


def test_email_of_another_household_is_warned_about_by_name(
    ctx: AppContext, qtbot: QtBot, ada: int, sqlite_db: Database
) -> None:
    make_patron(sqlite_db, "grace", "Grace", "Hopper", household_code="H2", emails=[("Home", "grace@example.org")])
    from desktop.ui.patrons.contact_card import open_contact_card

    open_contact_card(ctx, ada, add=("email", None))
    card = the_card(qtbot)
    qtbot.waitUntil(lambda: len(card.editors["email"]) == 3)
    editor = card.editors["email"][-1]
    qtbot.keyClicks(editor.value, "GRACE@example.org")
    qtbot.waitUntil(lambda: "Grace Hopper (grace" in editor.message.text(), timeout=5000)
    assert editor.message.property("state") == "warning"
    assert card.save_button.isEnabled()  # a warning, not a block
    with qtbot.waitSignal(card.saved, timeout=5000) as signal:
        card.save_button.click()
    assert any("Grace Hopper" in w for w in signal.args[0])  # type: ignore[index]


def test_removing_a_line_on_the_card_and_the_address(
    ctx: AppContext, qtbot: QtBot, ada: int, sqlite_db: Database
) -> None:
    from desktop.ui.patrons.contact_card import open_contact_card

    card = open_contact_card(ctx, ada)
    qtbot.waitUntil(lambda: card.data is not None)
    assert not card.save_button.isEnabled()  # nothing changed yet
    first = card.editors["email"][0]
    first.remove.click()
    assert card.editors["email"][0].primary.isChecked()  # the next e-mail became primary
    card.address_fields["address1"].setText("2 Elm St")
    with qtbot.waitSignal(card.saved, timeout=5000):
        card.save_button.click()
    emails = points_of(sqlite_db, ada, "email")
    assert [(e.normalized, e.is_primary) for e in emails] == [("ada@work.example.edu", True)]
    from desktop.services.patrons.contact_card import load_card

    assert load_card(sqlite_db, ada).address.address1 == "2 Elm St"


def test_closing_with_unsaved_changes_asks_first(ctx: AppContext, qtbot: QtBot, ada: int, sqlite_db: Database) -> None:
    from desktop.ui.patrons.contact_card import open_contact_card

    card = open_contact_card(ctx, ada)
    qtbot.waitUntil(lambda: card.data is not None)
    card.editors["email"][0].value.setText("typed@example.org")
    card.close_button.click()
    box = card.discard_box
    assert box is not None and "Discard your changes to Ada Lovelace" in box.text()
    box.button(box.StandardButton.Cancel).click()
    qtbot.wait(20)
    assert card.isVisible() and card.editors["email"][0].value.text() == "typed@example.org"
    card.reject()
    assert card.discard_box is not None
    card.discard_box.button(card.discard_box.StandardButton.Discard).click()
    qtbot.waitUntil(lambda: not card.isVisible(), timeout=5000)
    assert points_of(sqlite_db, ada, "email")[0].normalized == "ada@example.org"
