"""Routing and library settings shared through the database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from desktop.services.admin import shared_settings as ss
from desktop.services.database import Database
from desktop.services.errors import ConcurrentEditError, ValidationError
from desktop.services.notices.notice_context import system_settings


def test_defaults_load(sqlite_db: Database) -> None:
    loaded = ss.load_shared_settings(sqlite_db)
    assert loaded.poll_seconds == 300
    assert [(p.code, p.routing_delay_minutes, p.hold_days) for p in loaded.pickups] == [("MAIN", 0, 10)]
    assert loaded.library == ss.LibraryInfo("", "", "", "")  # no invented identity (issue 13)


def test_save_changes_and_reload(sqlite_db: Database) -> None:
    loaded = ss.load_shared_settings(sqlite_db)
    main = loaded.pickups[0]
    new = replace(
        ss.with_pickup(loaded, main.id, routing_delay_minutes=45, hold_days=14),
        poll_seconds=60,
        library=replace(loaded.library, name="Riverside Library", email="ill@riverside.example"),
    )
    saved = ss.save_shared_settings(sqlite_db, loaded, new, changed_by="alice")
    assert saved.pickups[0].routing_delay_minutes == 45 and saved.pickups[0].hold_days == 14
    assert saved.poll_seconds == 60 and ss.shared_poll_seconds(sqlite_db) == 60
    assert saved.updated["poll_seconds"][0] == "alice"
    with sqlite_db.read() as session:
        assert system_settings(session)["library_name"] == "Riverside Library"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"poll_seconds": 2}, "poll_seconds"),
        ({"library": ss.LibraryInfo("", "", "", "")}, "library_name"),
        ({"library": ss.LibraryInfo("L", "", "not an address", "")}, "library_email"),
    ],
)
def test_bad_values_are_refused(sqlite_db: Database, change: dict[str, object], key: str) -> None:
    ss.set_library_identity(sqlite_db, changed_by="alice", name="Riverside Library")
    loaded = ss.load_shared_settings(sqlite_db)
    with pytest.raises(ValidationError) as caught:
        ss.save_shared_settings(sqlite_db, loaded, replace(loaded, **change), changed_by="alice")  # type: ignore[arg-type]
    assert key in caught.value.problems
    assert ss.load_shared_settings(sqlite_db) == loaded


def test_negative_delay_is_refused(sqlite_db: Database) -> None:
    loaded = ss.load_shared_settings(sqlite_db)
    new = ss.with_pickup(loaded, loaded.pickups[0].id, routing_delay_minutes=-5)
    with pytest.raises(ValidationError, match="delay"):
        ss.save_shared_settings(sqlite_db, loaded, new, changed_by="alice")


def test_concurrent_change_of_the_same_value_is_refused(sqlite_db: Database) -> None:
    alice = ss.load_shared_settings(sqlite_db)
    bob = ss.load_shared_settings(sqlite_db)
    ss.save_shared_settings(sqlite_db, alice, replace(alice, poll_seconds=120), changed_by="alice")
    with pytest.raises(ConcurrentEditError, match="alice"):
        ss.save_shared_settings(sqlite_db, bob, replace(bob, poll_seconds=30), changed_by="bob")
    assert ss.shared_poll_seconds(sqlite_db) == 120
    # Bob changing something else does not clobber Alice's value.
    pickup = bob.pickups[0]
    ss.save_shared_settings(sqlite_db, bob, ss.with_pickup(bob, pickup.id, hold_days=7), changed_by="bob")
    after = ss.load_shared_settings(sqlite_db)
    assert after.poll_seconds == 120 and after.pickups[0].hold_days == 7
    stale = ss.with_pickup(alice, pickup.id, hold_days=21)
    with pytest.raises(ConcurrentEditError, match="hold days"):
        ss.save_shared_settings(sqlite_db, alice, stale, changed_by="alice")
