"""Shelf policies and closed days stored in the shared settings, on real SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select

from desktop.db.engine import Database
from desktop.db.models import PickupLocation
from desktop.domain.shelf import ClosedDays, ReminderStep, ShelfError, ShelfPolicy, StepKind
from desktop.services.admin.shelf_settings import (
    DEFAULT_POLICY,
    load_shelf_settings,
    parse_closed_days,
    save_shelf_settings,
)
from desktop.services.errors import ConcurrentEditError, ValidationError


def _pickup(db: Database) -> int:
    with db.read() as session:
        found = session.scalar(select(PickupLocation.id).limit(1))
    assert found is not None
    return int(found)


def test_defaults_work_as_they_are(any_db: Database) -> None:
    shelf = load_shelf_settings(any_db)
    assert shelf.policy(_pickup(any_db)) == DEFAULT_POLICY
    assert DEFAULT_POLICY.steps == (ReminderStep(StepKind.BEFORE_END, 2),) and DEFAULT_POLICY.expired_notice
    assert shelf.closed == ClosedDays()


def test_saved_policy_and_calendar_are_seen_by_every_workstation(any_db: Database) -> None:
    pickup = _pickup(any_db)
    original = load_shelf_settings(any_db)
    policy = ShelfPolicy(
        steps=(ReminderStep(StepKind.AFTER_NOTIFIED, 3, "Loan Pickup Reminder"), ReminderStep(StepKind.BEFORE_END, 2)),
        send_hour=10,
        weekdays=frozenset({0, 1, 2, 3, 4}),
        expired_notice=False,
    )
    closed = parse_closed_days("2026-12-24, 2026-12-31", "12-25\n01-01")
    new = replace(original, policies={pickup: policy}, closed=closed, timezone="Europe/Berlin")
    save_shelf_settings(any_db, original, new, changed_by="admin")
    again = load_shelf_settings(any_db)  # a fresh read, as another workstation makes it
    assert again.policy(pickup) == policy
    assert again.closed.is_closed(date(2027, 12, 25)) and again.closed.is_closed(date(2026, 12, 24))
    assert again.timezone == "Europe/Berlin"


def test_two_administrators_never_overwrite_each_other(sqlite_db: Database) -> None:
    pickup = _pickup(sqlite_db)
    first = load_shelf_settings(sqlite_db)
    second = load_shelf_settings(sqlite_db)
    save_shelf_settings(sqlite_db, first, replace(first, policies={pickup: ShelfPolicy(send_hour=8)}), changed_by="ann")
    with pytest.raises(ConcurrentEditError, match="changed by ann"):
        save_shelf_settings(
            sqlite_db, second, replace(second, policies={pickup: ShelfPolicy(send_hour=11)}), changed_by="bob"
        )
    assert load_shelf_settings(sqlite_db).policy(pickup).send_hour == 8


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"policies": {1: ShelfPolicy(send_hour=25)}}, "send hour must be from 0 to 23"),
    ],
)
def test_bad_settings_are_refused_and_nothing_saved(
    sqlite_db: Database, change: dict[str, object], message: str
) -> None:
    original = load_shelf_settings(sqlite_db)
    with pytest.raises(ValidationError, match=message):
        save_shelf_settings(sqlite_db, original, replace(original, **change), changed_by="admin")  # type: ignore[arg-type]
    assert load_shelf_settings(sqlite_db) == original


def test_typed_closed_days_name_the_bad_entry() -> None:
    with pytest.raises(ShelfError, match="not '2026-13-01'"):
        parse_closed_days("2026-12-24\n2026-13-01", "")
    with pytest.raises(ShelfError, match=r"not '25\.12'"):
        parse_closed_days("", "25.12")


def test_migration_0010_adds_the_hold_shelf_templates_and_the_index(tmp_path: object) -> None:
    from pathlib import Path

    from sqlalchemy import inspect, text

    from desktop.db import migrate
    from desktop.db.engine import make_engine, sqlite_url
    from desktop.services.notices.templates import HOLD_SHELF_TEMPLATES, default_templates

    engine = make_engine(sqlite_url(Path(str(tmp_path)) / "old.sqlite3"))
    try:
        migrate.upgrade(engine, revision="0007")
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT name, subject FROM notice_templates")).all())
        for name in HOLD_SHELF_TEMPLATES:
            assert rows[name] == default_templates()[name].subject
        assert "ix_requests_status_changed" in {i["name"] for i in inspect(engine).get_indexes("requests")}
    finally:
        engine.dispose()
