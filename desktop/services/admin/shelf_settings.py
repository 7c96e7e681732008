"""The hold shelf's settings, shared by every workstation: a policy per pickup location and the closed days.

Stored in the key-value ``system_settings`` table as JSON (``shelf_policies``: pickup id → policy;
``closed_days``: single and yearly dates; ``shelf_timezone``: the library's IANA zone, "" for the System
Manager computer's own). A location never given a policy uses :data:`DEFAULT_POLICY` (one reminder two days
before the hold ends, at 9:00, any day, an "expired" notice) — defaults a library can use as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from desktop.db.engine import Database
from desktop.db.models import SystemSetting
from desktop.domain.clock import as_utc, utcnow
from desktop.domain.shelf import (
    ALL_WEEKDAYS,
    ClosedDays,
    ReminderStep,
    ShelfError,
    ShelfPolicy,
    StepKind,
    hold_end,
    parse_date,
    parse_yearly,
)
from desktop.services.errors import ConcurrentEditError, ValidationError

POLICIES_KEY = "shelf_policies"
CLOSED_KEY = "closed_days"
TIMEZONE_KEY = "shelf_timezone"
DEFAULT_POLICY = ShelfPolicy()


def policy_to_json(policy: ShelfPolicy) -> dict[str, Any]:
    """A policy as stored."""
    return {
        "steps": [{"kind": s.kind.value, "days": s.days, "template": s.template} for s in policy.steps],
        "send_hour": policy.send_hour,
        "weekdays": sorted(policy.weekdays),
        "expired_notice": policy.expired_notice,
    }


def policy_from_json(data: Any) -> ShelfPolicy:
    """A stored policy; :class:`ShelfError` naming what is wrong with damaged data."""
    if not isinstance(data, dict):
        raise ShelfError("a shelf policy must be a JSON object")
    try:
        steps = tuple(
            ReminderStep(StepKind(str(s["kind"])), int(s["days"]), str(s.get("template", "")))
            for s in data.get("steps", [])
        )
        policy = ShelfPolicy(
            steps=steps,
            send_hour=int(data.get("send_hour", DEFAULT_POLICY.send_hour)),
            weekdays=frozenset(int(d) for d in data.get("weekdays", sorted(ALL_WEEKDAYS))),
            expired_notice=bool(data.get("expired_notice", True)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ShelfError(f"a stored shelf policy is damaged: {exc}") from None
    policy.check()
    return policy


def closed_to_json(closed: ClosedDays) -> dict[str, Any]:
    """A closed-days calendar as stored."""
    return {
        "dates": sorted(d.isoformat() for d in closed.dates),
        "yearly": sorted(f"{m:02d}-{d:02d}" for m, d in closed.yearly),
    }


def closed_from_json(data: Any) -> ClosedDays:
    """A stored calendar; :class:`ShelfError` naming the first bad entry."""
    if not isinstance(data, dict):
        return ClosedDays()
    closed = ClosedDays(
        dates=frozenset(parse_date(str(d)) for d in data.get("dates", [])),
        yearly=frozenset(parse_yearly(str(d)) for d in data.get("yearly", [])),
    )
    closed.check()
    return closed


def library_timezone(name: str) -> tzinfo:
    """The zone named ``name`` ("" = this computer's local zone)."""
    if not name.strip():
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ShelfError(f"unknown time zone {name.strip()[:60]!r} (use an IANA name such as Europe/Berlin)") from None


@dataclass(frozen=True)
class ShelfSettings:
    """Every location's policy, the closed days and the zone dates are counted in, as loaded."""

    policies: dict[int, ShelfPolicy]  # pickup location id → policy (absent: the default)
    closed: ClosedDays
    timezone: str = ""

    def policy(self, pickup_id: int | None) -> ShelfPolicy:
        """The policy of ``pickup_id`` (the default for a location never set or for none)."""
        return self.policies.get(pickup_id, DEFAULT_POLICY) if pickup_id is not None else DEFAULT_POLICY

    @property
    def tz(self) -> tzinfo:
        """The library's time zone."""
        return library_timezone(self.timezone)


def shelf_settings_from(values: dict[str, Any]) -> ShelfSettings:
    """The shelf settings in ``system_settings`` values (damaged entries fall back to the defaults)."""
    policies: dict[int, ShelfPolicy] = {}
    raw = values.get(POLICIES_KEY)
    if isinstance(raw, dict):
        for key, data in raw.items():
            try:
                policies[int(key)] = policy_from_json(data)
            except (ShelfError, ValueError):
                continue  # one damaged entry must not stop the shelf; that location uses the default
    try:
        closed = closed_from_json(values.get(CLOSED_KEY))
    except ShelfError:
        closed = ClosedDays()
    zone = str(values.get(TIMEZONE_KEY, "") or "")
    try:
        library_timezone(zone)
    except ShelfError:
        zone = ""
    return ShelfSettings(policies, closed, zone)


def read_shelf_settings(session: Session) -> ShelfSettings:
    """The shelf settings, read in the caller's session (only the shelf's own keys)."""
    values: dict[str, Any] = {}
    keys = (POLICIES_KEY, CLOSED_KEY, TIMEZONE_KEY)
    for row in session.scalars(select(SystemSetting).where(SystemSetting.key.in_(keys))):
        try:
            values[row.key] = json.loads(row.value)
        except ValueError:
            continue  # a damaged entry: the defaults, as shelf_settings_from does for a damaged policy
    return shelf_settings_from(values)


def load_shelf_settings(db: Database) -> ShelfSettings:
    """The shelf settings, in a read transaction of their own."""
    with db.read() as session:
        return read_shelf_settings(session)


def validate_shelf(new: ShelfSettings) -> dict[str, str]:
    """Problems with ``new`` keyed by field (``policy:<pickup id>``, ``closed_days``, ``timezone``)."""
    problems: dict[str, str] = {}
    for pickup_id, policy in new.policies.items():
        try:
            policy.check()
        except ShelfError as exc:
            problems[f"policy:{pickup_id}"] = str(exc)
    try:
        new.closed.check()
    except ShelfError as exc:
        problems["closed_days"] = str(exc)
    try:
        library_timezone(new.timezone)
    except ShelfError as exc:
        problems["timezone"] = str(exc)
    return problems


def save_shelf_settings(
    db: Database, original: ShelfSettings, new: ShelfSettings, *, changed_by: str, now: datetime | None = None
) -> ShelfSettings:
    """Store what changed between ``original`` (as loaded) and ``new`` in one transaction.

    Raises:
        ValidationError: a bad policy, date or zone; nothing saved.
        ConcurrentEditError: another workstation changed the same setting since ``original`` was loaded.
    """
    problems = validate_shelf(new)
    if problems:
        raise ValidationError("Shelf settings not saved:\n" + "\n".join(f"• {m}" for m in problems.values()), problems)
    when = now or utcnow()
    wanted = _as_values(new)
    before = _as_values(original)
    with db.write() as session:
        current = _as_values(read_shelf_settings(session))
        rows = {r.key: r for r in session.scalars(select(SystemSetting).where(SystemSetting.key.in_(wanted)))}
        for key, value in wanted.items():
            if value == before[key]:
                continue
            if current[key] not in (before[key], value):
                who = rows[key].updated_by if key in rows else "another workstation"
                raise ConcurrentEditError(
                    f"the shelf settings were changed by {who} while you were editing; nothing was saved. "
                    "Reopen the Customization Manager to see the current values."
                )
            row = rows.get(key)
            if row is None:
                session.add(SystemSetting(key=key, value=json.dumps(value), updated_by=changed_by, updated_at=when))
            else:
                row.value, row.updated_by, row.updated_at = json.dumps(value), changed_by, when
    return load_shelf_settings(db)


def _as_values(settings: ShelfSettings) -> dict[str, Any]:
    return {
        POLICIES_KEY: {str(k): policy_to_json(v) for k, v in sorted(settings.policies.items())},
        CLOSED_KEY: closed_to_json(settings.closed),
        TIMEZONE_KEY: settings.timezone.strip(),
    }


def parse_closed_days(dates_text: str, yearly_text: str) -> ClosedDays:
    """A calendar from what staff typed (one date per line or comma), each bad entry named."""
    dates: set[date] = set()
    yearly: set[tuple[int, int]] = set()
    for item in dates_text.replace(",", "\n").splitlines():
        if item.strip():
            dates.add(parse_date(item))
    for item in yearly_text.replace(",", "\n").splitlines():
        if item.strip():
            yearly.add(parse_yearly(item))
    closed = ClosedDays(frozenset(dates), frozenset(yearly))
    closed.check()
    return closed


def local_date(moment: datetime, tz: tzinfo) -> date:
    """The library's calendar day of a stored (UTC) timestamp."""
    return as_utc(moment).astimezone(tz).date()


def shelf_hold_until(values: dict[str, Any], notified_at: datetime, hold_days: int) -> str:
    """The hold's last day (ISO) for a notice: closed days move it, as on the shelf view."""
    shelf = shelf_settings_from(values)
    try:
        return hold_end(local_date(notified_at, shelf.tz), hold_days, shelf.closed).isoformat()
    except ShelfError:
        return (local_date(notified_at, shelf.tz) + timedelta(days=hold_days)).isoformat()


@dataclass(frozen=True)
class ShelfEditorData:
    """What the Routing tab's hold-shelf editor needs: the settings and the pickup locations (id, name)."""

    settings: ShelfSettings
    pickups: tuple[tuple[int, str], ...]


def load_shelf_editor(db: Database) -> ShelfEditorData:
    """The shelf settings with the active pickup locations, in one read transaction."""
    from desktop.db.models import PickupLocation

    with db.read() as session:
        settings = read_shelf_settings(session)
        pickups = tuple(
            (int(pid), str(name))
            for pid, name in session.execute(
                select(PickupLocation.id, PickupLocation.name)
                .where(PickupLocation.active.is_(True))
                .order_by(PickupLocation.name, PickupLocation.id)
            )
        )
    return ShelfEditorData(settings, pickups)
