"""Changing a patron's notification and delivery methods on the Contact Card: recorded with who and when, E-Mail
without an address refused, and the patron's requests waiting for contact move to the right Contact Customers
group (their e-mail notice cancelled with a reason, or an arrival notice queued). Real SQLite files, PostgreSQL
where available, real widgets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.domain.methods import NotificationMethod
from desktop.domain.statuses import Status
from desktop.services.errors import ConcurrentEditError, ValidationError
from desktop.services.patrons.contact_card import Methods, load_card, save_card
from desktop.services.requests.contact_customers import load_contact_customers
from desktop.ui.context import AppContext
from desktop.ui.patrons.contact_card import ContactCard, open_contact_card
from tests.outbox_support import add_request, move, notices
from tests.patron_helpers import make_patron


def waiting_request(db: Database, patron_id: int) -> int:
    request_id = add_request(db, patron_id)
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    return request_id


def group_of(db: Database, request_id: int) -> NotificationMethod | None:
    groups = load_contact_customers(db)
    for method in NotificationMethod:
        if any(r.request_id == request_id for r in groups.group(method)):
            return method
    return None


def change(db: Database, patron_id: int, methods: Methods, staff: str = "tester") -> tuple[str, ...]:
    card = load_card(db, patron_id)
    result = save_card(db, patron_id, card.version_id, card.points, card.address, methods=methods, staff=staff)
    return result.regrouped


def test_email_to_phone_cancels_the_notice_and_regroups(any_db: Database) -> None:
    ada = make_patron(any_db, "ada", emails=[("Home", "ada@example.org")], phones=[("Home", "217 555 0101")])
    request_id = waiting_request(any_db, ada)
    assert [n.state for n in notices(any_db, request_id=request_id)] == ["pending"]
    assert group_of(any_db, request_id) is NotificationMethod.EMAIL

    said = change(any_db, ada, Methods("Phone", "Hold for Pickup"), staff="maria")

    assert said == ("1 request(s) waiting for contact moved to the Phone group; 1 e-mail notice(s) cancelled.",)
    notice = notices(any_db, request_id=request_id)[0]
    assert notice.state == "cancelled"
    assert notice.last_reply == "cancelled: the patron is now notified by Phone (changed by maria)"
    assert group_of(any_db, request_id) is NotificationMethod.PHONE
    card = load_card(any_db, ada)
    assert card.methods == Methods("Phone", "Hold for Pickup")
    history = card.history[0]
    assert (history.field, history.old_value, history.new_value, history.changed_by) == (
        "notification_method", "E-Mail", "Phone", "maria",
    )  # fmt: skip
    assert history.line().startswith("Notify by: E-Mail → Phone · maria · ")


def test_back_to_email_queues_the_arrival_notice_again(any_db: Database) -> None:
    ada = make_patron(any_db, "ada", emails=[("Home", "ada@example.org")], phones=[("Home", "217 555 0101")])
    request_id = waiting_request(any_db, ada)
    change(any_db, ada, Methods("Phone", "Hold for Pickup"))
    said = change(any_db, ada, Methods("E-Mail", "Hold for Pickup"))
    assert said == (
        "1 request(s) waiting for contact moved to the E-Mail group; 1 arrival notice(s) queued for the System Manager.",
    )
    assert [(n.state, n.to_address) for n in notices(any_db, request_id=request_id)] == [("pending", "ada@example.org")]
    assert group_of(any_db, request_id) is NotificationMethod.EMAIL
    assert [h.new_value for h in load_card(any_db, ada).history] == ["E-Mail", "Phone"]  # newest first


def test_phone_patron_moved_to_email_gets_the_arrival_notice(sqlite_db: Database) -> None:
    bob = make_patron(
        sqlite_db, "bob", "Bob", "Ross", emails=[("Home", "bob@example.org")], notification_method="Phone"
    )
    request_id = waiting_request(sqlite_db, bob)
    assert notices(sqlite_db, request_id=request_id) == []
    assert group_of(sqlite_db, request_id) is NotificationMethod.PHONE
    change(sqlite_db, bob, Methods("E-Mail", "Hold for Pickup"))
    assert [n.state for n in notices(sqlite_db, request_id=request_id)] == ["pending"]
    assert group_of(sqlite_db, request_id) is NotificationMethod.EMAIL


def test_email_without_an_address_is_refused_and_nothing_changes(sqlite_db: Database) -> None:
    bob = make_patron(sqlite_db, "bob", "Bob", "Ross", phones=[("Home", "217 555 0101")], notification_method="Phone")
    request_id = waiting_request(sqlite_db, bob)
    with pytest.raises(ValidationError) as refused:
        change(sqlite_db, bob, Methods("E-Mail", "Hold for Pickup"))
    assert refused.value.problems == {
        "methods.notification": "E-Mail needs an e-mail address: add one to this card first, or choose Phone or Mail."
    }
    card = load_card(sqlite_db, bob)
    assert card.methods.notification == "Phone" and card.history == ()
    assert group_of(sqlite_db, request_id) is NotificationMethod.PHONE


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        (Methods("Phone", "Hold for Pickup"), "Phone needs a phone number: add one to this card first"),
        (Methods("Fax", "Hold for Pickup"), "Unknown notification method 'Fax': choose E-Mail, Phone or Mail."),
        (Methods("E-Mail", "Drone"), "Unknown delivery method 'Drone'"),
    ],
)
def test_other_bad_methods_are_refused_with_a_message(sqlite_db: Database, methods: Methods, message: str) -> None:
    ada = make_patron(sqlite_db, "ada", emails=[("Home", "ada@example.org")])
    with pytest.raises(ValidationError) as refused:
        change(sqlite_db, ada, methods)
    assert message in " ".join(refused.value.problems.values())


def test_mail_to_address_needs_a_postal_address(sqlite_db: Database) -> None:
    ada = make_patron(sqlite_db, "ada", emails=[("Home", "ada@example.org")])
    card = load_card(sqlite_db, ada)
    from desktop.services.patrons.contact_card import PostalAddress

    with pytest.raises(ValidationError) as refused:
        save_card(sqlite_db, ada, card.version_id, card.points, PostalAddress(),
                  methods=Methods("E-Mail", "Mail to Address"), staff="tester")  # fmt: skip
    assert "Mail to Address needs a postal address" in refused.value.problems["methods.delivery"]
    change(sqlite_db, ada, Methods("E-Mail", "Mail to Address"))  # the patron has one: accepted
    assert load_card(sqlite_db, ada).history[0].line().startswith("Delivery: Hold for Pickup → Mail to Address")


def test_a_stale_card_does_not_change_methods(sqlite_db: Database) -> None:
    ada = make_patron(sqlite_db, "ada", emails=[("Home", "ada@example.org")], phones=[("Home", "217 555 0101")])
    stale = load_card(sqlite_db, ada)
    change(sqlite_db, ada, Methods("Mail", "Hold for Pickup"))
    with pytest.raises(ConcurrentEditError):
        save_card(sqlite_db, ada, stale.version_id, stale.points, stale.address,
                  methods=Methods("Phone", "Hold for Pickup"), staff="tester")  # fmt: skip
    assert load_card(sqlite_db, ada).methods.notification == "Mail"


# ----------------------------------------------------------------------------------------------- the card


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, settings)
    yield context
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, ContactCard):
            widget._discarding = True
            widget.close()
    context.shutdown()


def loaded_card(ctx: AppContext, qtbot: QtBot, patron_id: int) -> ContactCard:
    card = open_contact_card(ctx, patron_id)
    qtbot.waitUntil(lambda: card.data is not None and not ctx.runner.busy, timeout=10_000)
    return card


def test_card_changes_the_method_and_the_request_moves_group(
    ctx: AppContext, sqlite_db: Database, qtbot: QtBot
) -> None:
    ada = make_patron(sqlite_db, "ada", emails=[("Home", "ada@example.org")], phones=[("Home", "217 555 0101")])
    request_id = waiting_request(sqlite_db, ada)
    card = loaded_card(ctx, qtbot, ada)
    assert card.notification_combo.currentText() == "E-Mail" and not card.history_label.isVisible()
    card.notification_combo.setCurrentIndex(card.notification_combo.findData("Phone"))
    assert card.dirty and card.save_button.isEnabled()
    with qtbot.waitSignal(card.regrouped, timeout=10_000) as said:
        card.save_button.click()
    assert "moved to the Phone group" in said.args[0]
    assert group_of(sqlite_db, request_id) is NotificationMethod.PHONE
    again = loaded_card(ctx, qtbot, ada)
    again.show()
    assert again.notification_combo.currentText() == "Phone"
    assert again.history_label.isVisible() and "Notify by: E-Mail → Phone · tester" in again.history_label.text()


def test_card_refuses_email_without_an_address_as_typed(ctx: AppContext, sqlite_db: Database, qtbot: QtBot) -> None:
    bob = make_patron(sqlite_db, "bob", "Bob", "Ross", phones=[("Home", "217 555 0101")], notification_method="Phone")
    card = loaded_card(ctx, qtbot, bob)
    card.show()
    card.notification_combo.setCurrentIndex(card.notification_combo.findData("E-Mail"))
    assert not card.save_button.isEnabled()
    assert card.methods_message.isVisible()
    assert card.methods_message.text().startswith("E-Mail needs an e-mail address")
    assert "Fix first: Methods: E-Mail needs an e-mail address" in card.hint.text()
    field = card.add_field("email", None)  # typing an address on the same card lifts the refusal
    assert field is not None
    field.value.setText("bob@example.org")
    assert card.save_button.isEnabled() and not card.methods_message.isVisible()
