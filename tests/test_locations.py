"""Locations code table: add, rename, reorder, deactivate (never delete in use), allowed kinds, defaults."""

from __future__ import annotations

import pytest

from desktop.db.engine import Database
from desktop.services.errors import ValidationError
from desktop.services.patrons import locations as svc
from desktop.services.patrons.contact_card import default_location, load_card
from tests.patron_helpers import location_id, make_patron


def names(db: Database) -> list[str]:
    return [row.name for row in svc.list_locations(db)]


def test_defaults_ship_in_order_with_kinds(sqlite_db: Database) -> None:
    rows = svc.list_locations(sqlite_db)
    assert [r.name for r in rows] == ["Home", "Work", "Cell", "Emergency", "Other"]
    cell = rows[2]
    assert cell.kinds == ("phone",) and cell.default_for == ("phone",) and cell.active


def test_add_rename_and_reorder(sqlite_db: Database) -> None:
    new = svc.add_location(sqlite_db, "  Summer   house ", ["phone", "address"])
    assert names(sqlite_db)[-1] == "Summer house"
    with pytest.raises(ValidationError, match="already a location called Home"):
        svc.add_location(sqlite_db, "home")
    with pytest.raises(ValidationError, match="needs a name"):
        svc.rename_location(sqlite_db, new, "   ")
    svc.rename_location(sqlite_db, new, "Cottage")
    svc.move_location(sqlite_db, new, -10)
    assert names(sqlite_db)[0] == "Cottage"
    svc.move_location(sqlite_db, new, 2)
    assert names(sqlite_db)[:3] == ["Home", "Work", "Cottage"]
    with pytest.raises(ValidationError, match="Unknown kind"):
        svc.add_location(sqlite_db, "Boat", ["pigeon"])


def test_a_location_in_use_is_deactivated_not_deleted(sqlite_db: Database) -> None:
    make_patron(sqlite_db, "ada", emails=[("Other", "ada@example.org")])
    other = location_id(sqlite_db, "Other")
    row = next(r for r in svc.list_locations(sqlite_db) if r.id == other)
    assert row.in_use == (("email", 1),) and row.use_count == 1
    with pytest.raises(ValidationError, match="deactivate it instead"):
        svc.delete_location(sqlite_db, other)
    svc.set_active(sqlite_db, other, False)
    assert "Other" in names(sqlite_db)
    card = load_card(sqlite_db, 1)
    assert card.points[0].location_id == other  # kept on the point
    unused = svc.add_location(sqlite_db, "Temporary")
    svc.delete_location(sqlite_db, unused)
    assert "Temporary" not in names(sqlite_db)


def test_kinds_cannot_be_taken_away_while_used(sqlite_db: Database) -> None:
    make_patron(sqlite_db, "ada", phones=[("Work", "217 555 0111")])
    work = location_id(sqlite_db, "Work")
    with pytest.raises(ValidationError, match="1 phone"):
        svc.set_kinds(sqlite_db, work, ["email", "fax", "web"])
    svc.set_kinds(sqlite_db, work, ["phone", "email"])
    row = next(r for r in svc.list_locations(sqlite_db) if r.id == work)
    assert row.kinds == ("email", "phone") and row.default_for == ()  # fax, web defaults went with the kinds


def test_one_default_per_kind(sqlite_db: Database) -> None:
    other = location_id(sqlite_db, "Other")
    svc.set_default(sqlite_db, other, "email")
    rows = {r.name: r for r in svc.list_locations(sqlite_db)}
    assert rows["Other"].default_for == ("email",) and rows["Home"].default_for == ("address",)
    card = load_card(sqlite_db, make_patron(sqlite_db, "x"))
    assert default_location(card.locations, "email").name == "Other"  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="does not allow e-mail"):
        svc.set_default(sqlite_db, location_id(sqlite_db, "Cell"), "email")
    svc.set_active(sqlite_db, other, False)
    assert next(r for r in svc.list_locations(sqlite_db) if r.id == other).default_for == ()
    with pytest.raises(ValidationError, match="deactivated"):
        svc.set_default(sqlite_db, other, "email")
    svc.set_default(sqlite_db, location_id(sqlite_db, "Home"), "address", default=False)
    assert all("address" not in r.default_for for r in svc.list_locations(sqlite_db))
