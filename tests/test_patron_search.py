"""Patron search (name, user name, e-mail, phone in any format) and the patron record read."""

from __future__ import annotations

import pytest

from desktop.db.engine import Database
from desktop.services.errors import NotFoundError
from desktop.services.patrons.lookup import get_patron_record, search_patrons
from tests.patron_helpers import make_patron


@pytest.fixture
def people(any_db: Database) -> dict[str, int]:
    return {
        "ada": make_patron(
            any_db, "alovelace", "Ada", "Lovelace", household_code="H1",
            emails=[("Home", "ada@example.org")], phones=[("Home", "+1 217 555 0101"), ("Cell", "312-555-0177")],
        ),
        "byron": make_patron(any_db, "gbyron", "George", "Byron", household_code="H1", emails=[("Home", "gb@poets.example")]),
        "mei": make_patron(any_db, "mwang", "美", "王", emails=[("Work", "mei.wang@example.edu")], phones=[("Work", "217 555 0199")]),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(217) 555-0101", ["alovelace"]),
        ("217.555.0101", ["alovelace"]),
        ("+12175550101", ["alovelace"]),
        ("2175550101", ["alovelace"]),
        ("312 555 0177", ["alovelace"]),
        ("555-01", ["alovelace", "mwang"]),
        ("0199", ["mwang"]),
        ("ada@EXAMPLE.org", ["alovelace"]),
        ("@example.edu", ["mwang"]),
        ("lovelace", ["alovelace"]),
        ("Lovelace, Ada", ["alovelace"]),
        ("ada love", ["alovelace"]),
        ("gbyron", ["gbyron"]),
        ("王", ["mwang"]),
        ("poets", ["gbyron"]),
        ("nobody-here", []),
        ("100%", []),
    ],
)
def test_search_finds_by_name_username_email_and_phone(
    any_db: Database, people: dict[str, int], text: str, expected: list[str]
) -> None:
    assert sorted(h.username for h in search_patrons(any_db, text)) == sorted(expected)


def test_blank_search_lists_everyone_up_to_the_limit(any_db: Database, people: dict[str, int]) -> None:
    assert len(search_patrons(any_db, "  ")) == 3
    assert len(search_patrons(any_db, "", limit=2)) == 2


def test_hits_show_primary_contacts(any_db: Database, people: dict[str, int]) -> None:
    (hit,) = search_patrons(any_db, "lovelace")
    assert (hit.email, hit.phone, hit.household_name) == ("ada@example.org", "(217) 555-0101", "The H1 household")


def test_record_has_household_members_contacts_and_requests(seeded_db: Database) -> None:
    from sqlalchemy import select

    from desktop.db.models import Patron, Request

    with seeded_db.read() as session:
        patron = session.scalars(select(Patron).where(Patron.household_id.is_not(None))).first()
        assert patron is not None
        pid, hid = patron.id, patron.household_id
        members = set(session.scalars(select(Patron.id).where(Patron.household_id == hid, Patron.id != pid)))
        tns = set(session.scalars(select(Request.transaction_number).where(Request.patron_id == pid)))
    record = get_patron_record(seeded_db, pid)
    assert {m.id for m in record.household_members} == members and record.household_name
    assert {r.transaction_number for r in record.requests} == tns
    assert [r.transaction_number for r in record.requests] == sorted(tns, reverse=True)
    kinds = [c.kind for c in record.contacts]
    assert kinds == sorted(kinds, key=["email", "phone", "fax", "web"].index)
    assert sum(c.is_primary for c in record.contacts_of("email")) == 1
    phone = record.contacts_of("phone")[0]
    assert phone.normalized.startswith("+1") and phone.display.startswith("(")
    assert record.address_lines or record.notification_method == "Mail"


def test_missing_patron(sqlite_db: Database) -> None:
    with pytest.raises(NotFoundError):
        get_patron_record(sqlite_db, 12345)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("müller", ["p-one"]),
        ("MÜLLER", ["p-one"]),
        ("jürgen Müller", ["p-one"]),
        ("zoë", ["p-three"]),
        ("ΣΟΦΊΑ", ["p-four"]),
        ("muller", []),  # a different letter, not a different case
        ("mueller", ["p-two"]),
        ("ü%", []),  # wildcards are text in the non-ASCII comparison too
    ],
)
def test_case_is_ignored_for_every_letter(any_db: Database, text: str, expected: list[str]) -> None:
    """SQLite folds only ASCII letters by itself; a word with others must still ignore case, on both databases."""
    make_patron(any_db, "p-one", "Jürgen", "MÜLLER")
    make_patron(any_db, "p-two", "Juergen", "Mueller")
    make_patron(any_db, "p-three", "ZOË", "Adams")
    make_patron(any_db, "p-four", "Σοφία", "Παπαδοπούλου")
    assert sorted(h.username for h in search_patrons(any_db, text)) == expected
