"""Template contexts read as rows: the same values the ORM objects give, pickup fallbacks, names, titles."""

from __future__ import annotations

from sqlalchemy import select

from desktop.db.models import ContactPoint, Patron, PickupLocation, Request
from desktop.services.database import Database
from desktop.services.notices.notice_context import (
    load_request_rows,
    patron_context,
    pickup_context,
    primary_contact,
    request_context,
    request_notice_context,
    system_settings,
)


def test_rows_give_what_the_orm_objects_give(any_db: Database) -> None:
    """Every request of a varied set: with and without own pickup desk, phones, articles, blank names."""
    with any_db.write() as session:
        desk = PickupLocation(code="EAST", name="East Desk", address="2 East St", hold_days=5)
        home = PickupLocation(code="HOME", name="Home Desk", hold_days=14)
        session.add_all([desk, home])
        session.flush()
        named = Patron(username="zoe", first_name="Zoë", last_name="华", notification_method="Phone",
                       delivery_method="Hold for Pickup", pickup_location_id=home.id, address1="1 Main St",
                       city="Springfield", state="IL", zip="62701")  # fmt: skip
        named.contact_points += [
            ContactPoint(kind="phone", value="217 555 0101", normalized="+12175550101", extension="12", position=0),
            ContactPoint(kind="email", value="b@example.org", normalized="b@example.org", position=1),
            ContactPoint(kind="email", value="a@example.org", normalized="a@example.org", is_primary=True,
                         position=2),
            ContactPoint(kind="web", value="https://example.org", normalized="https://example.org/", position=3),
        ]  # fmt: skip
        blank = Patron(username="nobody", notification_method="Mail", delivery_method="Mail to Address")
        session.add_all([named, blank])
        session.flush()
        requests = [
            Request(transaction_number=900_001, patron_id=named.id, request_type="Loan", loan_title="Atlas",
                    loan_author="Mercator", status="Awaiting Customer Contact", pickup_location_id=desk.id),
            Request(transaction_number=900_002, patron_id=named.id, request_type="Article", loan_title="",
                    photo_journal_title="Nature", photo_article_title="", status="Awaiting Customer Contact"),
            Request(transaction_number=900_003, patron_id=blank.id, request_type="Article",
                    photo_journal_title="Science", photo_article_title="On Things", status="Request Sent"),
        ]  # fmt: skip
        session.add_all(requests)
        session.flush()
        ids = [r.id for r in requests]
    with any_db.read() as session:
        rows = load_request_rows(session, [*ids, 999_999])
        assert sorted(rows) == sorted(ids)  # an unknown id is left out
        for request in session.scalars(select(Request).where(Request.id.in_(ids))):
            row = rows[request.id]
            assert request_context(row) == request_context(request)
            assert patron_context(row.patron) == patron_context(request.patron)
            pickup = request.pickup_location or request.patron.pickup_location
            assert pickup_context(row.pickup, request.status_changed_at) == pickup_context(
                pickup, request.status_changed_at
            )
            assert row.patron.full_name == request.patron.full_name
            assert row.patron.notification_method == request.patron.notification_method
        first = rows[ids[0]]
        email = primary_contact(first.patron, "email")
        assert email is not None and email.value == "a@example.org"  # the primary, not the first
        assert (
            patron_context(first.patron)["phone"] == patron_context(session.get(Patron, first.patron.id))["phone"] != ""
        )
        assert first.pickup is not None and first.pickup.name == "East Desk"  # the request's own desk
        assert rows[ids[1]].pickup is not None and rows[ids[1]].pickup.name == "Home Desk"  # else the patron's
        assert rows[ids[1]].title == "Nature" and rows[ids[2]].title == "On Things"
        assert rows[ids[2]].pickup is None and rows[ids[2]].patron.full_name == "nobody"
        context = request_notice_context(session, ids[0], shared=system_settings(session))
        assert context["patron"]["full_name"] == "Zoë 华" and context["pickup"]["hold_days"] == 5
