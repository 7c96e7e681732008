"""Per-event channel preferences stored per patron (desktop/services/patrons/channel_preferences.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from desktop.db.engine import Database
from desktop.db.models import Patron, PatronChannelPreference, PatronHistory
from desktop.domain.channels import Channel, NoticeEvent
from desktop.services.errors import ConcurrentEditError, NotFoundError, ValidationError
from desktop.services.patrons import contact_card as cc
from desktop.services.patrons.channel_preferences import load_preferences, save_preferences
from tests.patron_helpers import make_patron


def _method(db: Database, patron_id: int, method: str) -> None:
    with db.write() as session:
        patron = session.get(Patron, patron_id)
        assert patron is not None
        patron.notification_method = method


def test_a_patron_without_rows_follows_their_method(any_db: Database) -> None:
    patron = make_patron(any_db, "phoebe", emails=[("Home", "phoebe@example.org")])
    _method(any_db, patron, "Phone")
    prefs = load_preferences(any_db, patron)
    assert prefs.stored == frozenset()
    assert prefs.channels[NoticeEvent.READY_FOR_PICKUP] == (Channel.PHONE,)
    assert prefs.channels[NoticeEvent.PASSWORD_RESET] == (Channel.EMAIL,)


def test_saving_stores_changes_with_history_and_a_new_version(any_db: Database) -> None:
    patron = make_patron(any_db, "sam", emails=[("Home", "sam@example.org")])
    before = load_preferences(any_db, patron)
    after = save_preferences(
        any_db,
        patron,
        before.version,
        {NoticeEvent.READY_FOR_PICKUP: (Channel.SMS, Channel.EMAIL, Channel.PHONE)},
        staff="jdoe",
    )
    assert after.channels[NoticeEvent.READY_FOR_PICKUP] == (Channel.SMS, Channel.EMAIL, Channel.PHONE)
    assert after.channels[NoticeEvent.PICKUP_REMINDER] == (Channel.EMAIL,)  # untouched: still the method
    assert after.stored == {NoticeEvent.READY_FOR_PICKUP}
    assert after.version > before.version
    with any_db.read() as session:
        history = session.scalars(select(PatronHistory).where(PatronHistory.patron_id == patron)).all()
        assert [(h.field, h.old_value, h.new_value, h.changed_by) for h in history] == [
            ("channels: Item ready for pickup", "E-Mail", "SMS>E-Mail>Phone", "jdoe")
        ]
    # Saving the same again writes nothing (no history line, same version).
    again = save_preferences(
        any_db,
        patron,
        after.version,
        {NoticeEvent.READY_FOR_PICKUP: after.channels[NoticeEvent.READY_FOR_PICKUP]},
        staff="jdoe",
    )
    assert again.version == after.version


def test_choosing_the_default_again_removes_the_row_so_the_method_is_followed(sqlite_db: Database) -> None:
    patron = make_patron(sqlite_db, "rosa", emails=[("Home", "rosa@example.org")])
    prefs = save_preferences(
        sqlite_db,
        patron,
        load_preferences(sqlite_db, patron).version,
        {NoticeEvent.CANCELLATION: (Channel.MAIL,)},
        staff="a",
    )
    prefs = save_preferences(sqlite_db, patron, prefs.version, {NoticeEvent.CANCELLATION: (Channel.EMAIL,)}, staff="a")
    assert prefs.stored == frozenset()
    with sqlite_db.read() as session:
        assert session.scalars(select(PatronChannelPreference)).all() == []
    _method(sqlite_db, patron, "Mail")
    assert load_preferences(sqlite_db, patron).channels[NoticeEvent.CANCELLATION] == (Channel.MAIL,)


def test_an_unusable_preference_is_refused_naming_the_event(sqlite_db: Database) -> None:
    patron = make_patron(sqlite_db, "lee", emails=[("Home", "lee@example.org")])
    version = load_preferences(sqlite_db, patron).version
    with pytest.raises(ValidationError) as caught:
        save_preferences(
            sqlite_db,
            patron,
            version,
            {NoticeEvent.PASSWORD_RESET: (Channel.SMS,), NoticeEvent.READY_FOR_PICKUP: ()},
            staff="a",
        )
    assert caught.value.problems == {
        "Password reset": "Password reset: the reset link can only be e-mailed, so E-Mail must be one of the channels.",
        "Item ready for pickup": "Item ready for pickup: choose at least one channel.",
    }
    assert load_preferences(sqlite_db, patron).version == version


def test_a_save_from_an_older_card_is_refused(any_db: Database) -> None:
    patron = make_patron(any_db, "kim", emails=[("Home", "kim@example.org")])
    stale = load_preferences(any_db, patron).version
    save_preferences(any_db, patron, stale, {NoticeEvent.PICKUP_REMINDER: (Channel.SMS, Channel.EMAIL)}, staff="a")
    with pytest.raises(ConcurrentEditError, match="Another workstation changed this patron"):
        save_preferences(any_db, patron, stale, {NoticeEvent.PICKUP_REMINDER: (Channel.PHONE,)}, staff="b")
    assert load_preferences(any_db, patron).channels[NoticeEvent.PICKUP_REMINDER] == (Channel.SMS, Channel.EMAIL)


def test_a_removed_patron_is_named(sqlite_db: Database) -> None:
    with pytest.raises(NotFoundError):
        load_preferences(sqlite_db, 999_999)
    with pytest.raises(NotFoundError):
        save_preferences(sqlite_db, 999_999, 1, {NoticeEvent.PICKUP_REMINDER: (Channel.SMS,)}, staff="a")


def test_a_patron_removed_takes_their_preferences_along(sqlite_db: Database) -> None:
    patron = make_patron(sqlite_db, "gone", emails=[("Home", "gone@example.org")])
    save_preferences(
        sqlite_db,
        patron,
        load_preferences(sqlite_db, patron).version,
        {NoticeEvent.PICKUP_REMINDER: (Channel.SMS,)},
        staff="a",
    )
    with sqlite_db.write() as session:
        session.delete(session.get(Patron, patron))
    with sqlite_db.read() as session:
        assert session.scalars(select(PatronChannelPreference)).all() == []


# --- saved with the Contact Card (one transaction, the card's version guard) --------------------------------------


def test_the_card_saves_methods_channels_and_carrier_together(any_db: Database) -> None:
    patron = make_patron(any_db, "cato", emails=[("Home", "cato@example.org")], phones=[("Cell", "217 555 0133")])
    card = cc.load_card(any_db, patron)
    assert card.preferences is not None and card.preferences.stored == frozenset()
    assert card.sms_carrier == "" and "Verizon" in card.carriers and card.sms_transport == "off"
    result = cc.save_card(
        any_db,
        patron,
        card.version_id,
        card.points,
        card.address,
        methods=cc.Methods("Phone", card.methods.delivery),
        # The reminder follows the new method (Phone: stored as no row); ready for pickup gets its own order.
        channels={
            NoticeEvent.READY_FOR_PICKUP: (Channel.SMS, Channel.PHONE),
            NoticeEvent.PICKUP_REMINDER: (Channel.PHONE,),
        },
        sms_carrier="  Verizon ",
        staff="jdoe",
    )
    prefs = load_preferences(any_db, patron)
    assert prefs.version == result.version_id
    assert prefs.stored == {NoticeEvent.READY_FOR_PICKUP}
    assert prefs.channels[NoticeEvent.PICKUP_REMINDER] == (Channel.PHONE,)
    with any_db.read() as session:
        row = session.get(Patron, patron)
        assert row is not None and row.sms_carrier == "Verizon"
        fields = {h.field: (h.old_value, h.new_value) for h in session.scalars(select(PatronHistory))}
    assert fields == {
        "notification_method": ("E-Mail", "Phone"),
        "channels: Item ready for pickup": ("Phone", "SMS>Phone"),
        "sms_carrier": ("", "Verizon"),
    }
    # A card opened before this save is refused, channels and all.
    with pytest.raises(ConcurrentEditError):
        cc.save_card(any_db, patron, card.version_id, card.points, card.address,
                     channels={NoticeEvent.CANCELLATION: (Channel.MAIL,)}, staff="other")  # fmt: skip


def test_the_card_refuses_unusable_channels_naming_the_event_and_saves_nothing(sqlite_db: Database) -> None:
    patron = make_patron(sqlite_db, "ines", emails=[("Home", "ines@example.org")])
    card = cc.load_card(sqlite_db, patron)
    with pytest.raises(ValidationError) as caught:
        cc.save_card(sqlite_db, patron, card.version_id, card.points, card.address,
                     channels={NoticeEvent.PASSWORD_RESET: (Channel.SMS,)}, sms_carrier="x" * 61, staff="a")  # fmt: skip
    assert set(caught.value.problems) == {"channels.Password reset", "sms_carrier"}
    assert "Password reset: the reset link" in str(caught.value)
    assert cc.load_card(sqlite_db, patron).version_id == card.version_id


def test_a_patron_with_a_method_callslip_does_not_know_still_has_preferences(sqlite_db: Database) -> None:
    patron = make_patron(sqlite_db, "odd", emails=[("Home", "odd@example.org")])
    _method(sqlite_db, patron, "Carrier pigeon")
    assert load_preferences(sqlite_db, patron).channels[NoticeEvent.PICKUP_REMINDER] == (Channel.EMAIL,)
