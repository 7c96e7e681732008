"""Settings shared by every workstation, stored in the database (Customization Manager → Routing, Library).

Per pickup location: how long a request waits at `In Transit to Pickup Location` before it is routed to
`Awaiting Customer Contact` (this is how staff control when e-mails go out) and how many days an item is held.
Library-wide: the System Manager's poll interval and the library's name, address, e-mail and phone (used in
notices). Saving writes only what this editor changed, and refuses when another workstation changed the same
value meanwhile, naming who: two administrators never overwrite each other silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from desktop.db.engine import Database
from desktop.db.models import PickupLocation, SystemSetting
from desktop.domain.clock import utcnow
from desktop.domain.contacts import ContactError, normalize_email
from desktop.services.errors import ConcurrentEditError, NotFoundError, ValidationError
from desktop.services.notices.mail_addresses import control_characters
from desktop.services.notices.notice_context import system_settings

#: Limits staff may set (a week of delay is already far more than any library uses).
MAX_DELAY_MINUTES = 7 * 24 * 60
MAX_HOLD_DAYS = 365
MIN_POLL_SECONDS = 10
MAX_POLL_SECONDS = 24 * 60 * 60
LIBRARY_KEYS = ("library_name", "library_address", "library_email", "library_phone")
#: The shared start of password-reset links (the token is appended); a workstation's ``web_base_url`` overrides it.
RESET_LINK_BASE_KEY = "reset_link_base"
#: Longest library value accepted (a notice signature, not a document).
MAX_LIBRARY_VALUE = 500


@dataclass(frozen=True)
class PickupRouting:
    """One pickup location's routing delay and hold period."""

    id: int
    code: str
    name: str
    routing_delay_minutes: int
    hold_days: int
    active: bool = True


@dataclass(frozen=True)
class LibraryInfo:
    """The library as notices name it."""

    name: str
    address: str
    email: str
    phone: str


@dataclass(frozen=True)
class SharedSettings:
    """Everything on the Routing and Library tabs, as loaded (the base the next save is checked against)."""

    pickups: tuple[PickupRouting, ...]
    poll_seconds: int
    library: LibraryInfo
    updated: dict[str, tuple[str, datetime]]  # system setting key -> (who, when) for "last changed" hints

    def pickup(self, pickup_id: int) -> PickupRouting:
        """The pickup location with ``pickup_id``."""
        for item in self.pickups:
            if item.id == pickup_id:
                return item
        raise NotFoundError(f"pickup location id {pickup_id} is not in these settings")


def load_shared_settings(db: Database) -> SharedSettings:
    """Read the Routing and Library settings (defaults filled in for keys never saved)."""
    with db.read() as session:
        pickups = tuple(
            PickupRouting(p.id, p.code, p.name, p.routing_delay_minutes, p.hold_days, p.active)
            for p in session.scalars(select(PickupLocation).order_by(PickupLocation.name, PickupLocation.id))
        )
        values = system_settings(session)
        updated = {row.key: (row.updated_by, row.updated_at) for row in session.scalars(select(SystemSetting))}
    return SharedSettings(
        pickups=pickups,
        poll_seconds=_int(values.get("poll_seconds"), 300),
        library=LibraryInfo(
            name=str(values.get("library_name", "")),
            address=str(values.get("library_address", "")),
            email=str(values.get("library_email", "")),
            phone=str(values.get("library_phone", "")),
        ),
        updated=updated,
    )


def shared_poll_seconds(db: Database, default: int = 300) -> int:
    """The System Manager's poll interval as set on the Routing tab (``default`` if never set)."""
    with db.read() as session:
        return _int(system_settings(session).get("poll_seconds"), default)


def effective_poll_seconds(db: Database, workstation_seconds: int) -> int:
    """The interval a System Manager waits: this workstation's own (``CALLSLIP_POLL_SECONDS``) when set,
    else the library's shared one from the Routing tab, so administrators change every workstation at once."""
    return workstation_seconds if workstation_seconds > 0 else shared_poll_seconds(db)


def reset_link_base(db: Database) -> str:
    """The library's shared start of password-reset links ("" when never set: resets are then refused)."""
    with db.read() as session:
        return str(system_settings(session).get(RESET_LINK_BASE_KEY, "") or "").strip()


def check_reset_link_base(value: str) -> str:
    """``value`` stripped, or a :class:`ValidationError` naming why it cannot start a reset link.

    A link a patron clicks must be an absolute ``https://`` (or ``http://``, for a test site) address; the token is
    appended to it as it is, so it normally ends with ``?token=`` or ``/``.
    """
    text = value.strip()
    if not text:
        return ""
    parsed = urlsplit(text)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc or any(c.isspace() for c in text):
        raise ValidationError(
            f"the reset-link base must be a web address starting with https://, not {text[:80]!r}",
            {RESET_LINK_BASE_KEY: "a web address such as https://library.example.edu/reset?token="},
        )
    if len(text) > 300:
        raise ValidationError("the reset-link base is longer than 300 characters", {RESET_LINK_BASE_KEY: "too long"})
    return text


def set_library_identity(
    db: Database,
    *,
    changed_by: str,
    name: str | None = None,
    address: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    reset_link_base: str | None = None,
    only_if_empty: bool = False,
) -> dict[str, str]:
    """Store the library's identity as given (``None`` leaves a value alone); returns what was written.

    Used by ``init-db`` (options) and by the demo (``only_if_empty``: never over a real library's values).

    Raises:
        ValidationError: an e-mail that is not one, a reset-link base that is not a web address, a value with a
            control character or longer than :data:`MAX_LIBRARY_VALUE`; nothing saved.
    """
    given = {
        "library_name": name,
        "library_address": address,
        "library_email": email,
        "library_phone": phone,
        RESET_LINK_BASE_KEY: reset_link_base,
    }
    wanted: dict[str, str] = {}
    for key, raw in given.items():
        if raw is None:
            continue
        value = raw.strip()
        allowed = "\n" if key == "library_address" else ""
        if any(ord(c) < 32 and c not in allowed for c in value) or "\x7f" in value:
            raise ValidationError(f"{_label(key)} contains a control character", {key: "control character"})
        if len(value) > MAX_LIBRARY_VALUE:
            raise ValidationError(f"{_label(key)} is longer than {MAX_LIBRARY_VALUE} characters", {key: "too long"})
        if key == "library_email" and value:
            try:
                value = normalize_email(value).display
            except ContactError as exc:
                raise ValidationError(f"library e-mail: {exc}", {key: str(exc)}) from None
        if key == RESET_LINK_BASE_KEY:
            value = check_reset_link_base(value)
        wanted[key] = value
    written: dict[str, str] = {}
    when = utcnow()
    with db.write() as session:
        rows = {row.key: row for row in session.scalars(select(SystemSetting).where(SystemSetting.key.in_(wanted)))}
        for key, value in wanted.items():
            row = rows.get(key)
            if only_if_empty and row is not None and str(json.loads(row.value) or "").strip():
                continue
            if row is None:
                session.add(SystemSetting(key=key, value=json.dumps(value), updated_by=changed_by, updated_at=when))
            else:
                row.value, row.updated_by, row.updated_at = json.dumps(value), changed_by, when
            written[key] = value
    return written


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def validate_shared(new: SharedSettings, original: SharedSettings | None = None) -> dict[str, str]:
    """Problems with ``new``, keyed by field (``pickup:<id>:delay``, ``poll_seconds``, ``library_email``…).

    A new database has no library name (none is invented), so an empty name is refused only when it would blank
    one the library has (``original``): saving the Routing tab of a new database must not need one.
    """
    problems: dict[str, str] = {}
    for pickup in new.pickups:
        if not 0 <= pickup.routing_delay_minutes <= MAX_DELAY_MINUTES:
            problems[f"pickup:{pickup.id}:delay"] = (
                f"{pickup.name}: the delay must be from 0 to {MAX_DELAY_MINUTES} minutes"
            )
        if not 1 <= pickup.hold_days <= MAX_HOLD_DAYS:
            problems[f"pickup:{pickup.id}:hold_days"] = f"{pickup.name}: items are held from 1 to {MAX_HOLD_DAYS} days"
    if not MIN_POLL_SECONDS <= new.poll_seconds <= MAX_POLL_SECONDS:
        problems["poll_seconds"] = f"the poll interval must be from {MIN_POLL_SECONDS} to {MAX_POLL_SECONDS} seconds"
    had_name = original is None or bool(original.library.name.strip())
    if had_name and not new.library.name.strip():
        problems["library_name"] = "the library needs a name (notices are signed with it)"
    elif control_characters(new.library.name.strip()):  # it goes into the From header of every notice
        problems["library_name"] = "the library name must be one line (it is the sender's name on every e-mail)"
    if new.library.email.strip():
        try:
            normalize_email(new.library.email)
        except ContactError as exc:
            problems["library_email"] = f"library e-mail: {exc}"
    return problems


def _library_values(library: LibraryInfo) -> dict[str, str]:
    return {
        "library_name": library.name.strip(),
        "library_address": library.address.strip(),
        "library_email": library.email.strip(),
        "library_phone": library.phone.strip(),
    }


def save_shared_settings(
    db: Database, original: SharedSettings, new: SharedSettings, *, changed_by: str, now: datetime | None = None
) -> SharedSettings:
    """Store what changed between ``original`` (as loaded) and ``new``, in one transaction.

    Raises:
        ValidationError: a value out of range; nothing saved.
        ConcurrentEditError: another workstation changed one of the same values since ``original`` was loaded;
            nothing saved.
    """
    problems = validate_shared(new, original)
    if problems:
        raise ValidationError("Settings not saved:\n" + "\n".join(f"• {m}" for m in problems.values()), problems)
    when = now or utcnow()
    with db.write() as session:
        _save_pickups(session, original, new)
        settings_now = system_settings(session)
        wanted: dict[str, object] = {"poll_seconds": new.poll_seconds, **_library_values(new.library)}
        before: dict[str, object] = {"poll_seconds": original.poll_seconds, **_library_values(original.library)}
        rows = {row.key: row for row in session.scalars(select(SystemSetting))}
        for key, value in wanted.items():
            if value == before[key]:
                continue
            stored = settings_now.get(key, "" if key in LIBRARY_KEYS else None)  # never set: empty, not changed
            stored_cmp = str(stored).strip() if isinstance(stored, str) else stored
            if stored_cmp not in (before[key], value):
                who = rows[key].updated_by if key in rows else "another workstation"
                raise ConcurrentEditError(
                    f"{_label(key)} was changed by {who} while you were editing; nothing was saved. "
                    "Close and reopen the Customization Manager to see the current values."
                )
            row = rows.get(key)
            if row is None:
                session.add(SystemSetting(key=key, value=json.dumps(value), updated_by=changed_by, updated_at=when))
            else:
                row.value = json.dumps(value)
                row.updated_by = changed_by
                row.updated_at = when
    return load_shared_settings(db)


def _save_pickups(session: Session, original: SharedSettings, new: SharedSettings) -> None:
    for pickup in new.pickups:
        base = original.pickup(pickup.id)
        if (pickup.routing_delay_minutes, pickup.hold_days) == (base.routing_delay_minutes, base.hold_days):
            continue
        row = session.get(PickupLocation, pickup.id)
        if row is None:
            raise NotFoundError(f"pickup location “{pickup.name}” no longer exists; nothing was saved")
        for attr in ("routing_delay_minutes", "hold_days"):
            mine, was, stored = getattr(pickup, attr), getattr(base, attr), getattr(row, attr)
            if mine == was:
                continue
            if stored not in (was, mine):
                raise ConcurrentEditError(
                    f"{pickup.name}: the {attr.replace('_', ' ')} was changed on another workstation while you "
                    "were editing; nothing was saved. Reopen the Customization Manager to see the current values."
                )
            setattr(row, attr, mine)


def _label(key: str) -> str:
    return {
        "poll_seconds": "The poll interval",
        "library_name": "The library name",
        "library_address": "The library address",
        "library_email": "The library e-mail",
        "library_phone": "The library phone",
        RESET_LINK_BASE_KEY: "The reset-link base",
    }.get(key, key)


def with_pickup(settings: SharedSettings, pickup_id: int, **changes: Any) -> SharedSettings:
    """A copy of ``settings`` with one pickup location's values changed (for editors and tests)."""
    pickups = tuple(replace(p, **changes) if p.id == pickup_id else p for p in settings.pickups)
    return replace(settings, pickups=pickups)
