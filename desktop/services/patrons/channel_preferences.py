"""A patron's per-event channel preferences: load them (stored or derived) and save them with history.

Why a service of its own: the Contact Card shows and edits them, the outbox reads them to choose the next
channel after a failure, and the ILLiad importer writes them; all three must see the same "effective" list —
a stored row, else the patron's single notification method (see :mod:`desktop.domain.channels`).

Saving is guarded by the patron's ``version_id`` like the Contact Card (a preference saved from a card opened
before another workstation's save is refused, not silently undone), and each change is a ``patron_history``
line (from, to, who, when). A preference equal to the derived default is stored as no row, so a patron whose
method later changes keeps following it.

The writing is also offered inside a caller's transaction (:func:`apply_preferences`, :func:`apply_carrier`): the
Contact Card saves preferences and the SMS carrier together with the rest of the card, under its version guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from desktop.db.models import Patron, PatronChannelPreference, PatronHistory
from desktop.domain.channels import (
    Channel,
    NoticeEvent,
    Preference,
    check_preference,
    default_preference,
    format_preference,
    parse_preference,
)
from desktop.domain.clock import Clock, utcnow
from desktop.services.database import Database
from desktop.services.errors import ConcurrentEditError, NotFoundError, ValidationError

#: ``patron_history.field`` of a preference change is this plus the event's name.
HISTORY_PREFIX = "channels: "
#: ``patron_history.field`` of a change of the SMS carrier.
CARRIER_FIELD = "sms_carrier"
#: ``patrons.sms_carrier`` holds at most this many characters.
CARRIER_LIMIT = 60


@dataclass(frozen=True)
class PatronPreferences:
    """What the Contact Card's preferences editor shows.

    Attributes:
        patron_id: whose preferences these are.
        version: the patron's ``version_id`` when read; saving with an older one is refused.
        channels: the effective channels per event, in order.
        stored: the events with a row of their own (the others follow the notification method).
    """

    patron_id: int
    version: int
    channels: Mapping[NoticeEvent, Preference]
    stored: frozenset[NoticeEvent]


def load_preferences(db: Database, patron_id: int) -> PatronPreferences:
    """The patron's effective preferences for every event.

    A stored row that no longer parses (edited by hand in the database) is ignored for the default, so a notice
    still has a way to go.

    Raises:
        NotFoundError: the patron was removed.
    """
    with db.read() as session:
        patron = session.get(Patron, patron_id)
        if patron is None:
            raise NotFoundError("That patron is no longer in the database.")
        return read_preferences(session, patron)


def read_preferences(session: Session, patron: Patron) -> PatronPreferences:
    """:func:`load_preferences` inside a session the caller holds (the Contact Card reads it with the card)."""
    rows = session.scalars(select(PatronChannelPreference).where(PatronChannelPreference.patron_id == patron.id)).all()
    stored: dict[NoticeEvent, Preference] = {}
    for row in rows:
        try:
            stored[NoticeEvent(row.event)] = parse_preference(row.channels)
        except ValueError:
            continue
    channels = {
        event: stored.get(event) or effective_default(patron.notification_method, event) for event in NoticeEvent
    }
    return PatronPreferences(patron.id, patron.version_id, channels, frozenset(stored))


def effective_default(method: str, event: NoticeEvent) -> Preference:
    """:func:`default_preference`, with E-Mail for a method another system wrote that Callslip does not know.

    Such a patron's card must still open (it shows the method as "unknown" until staff choose one).
    """
    try:
        return default_preference(method, event)
    except ValueError:
        return (Channel.EMAIL,)


def preference_problems(channels: Mapping[NoticeEvent, Preference]) -> dict[str, str]:
    """Why each event's channels cannot be saved, keyed by the event's name (empty when all can)."""
    return {
        event.value: "; ".join(found)
        for event, chosen in channels.items()
        if (found := check_preference(chosen, event))
    }


def save_preferences(
    db: Database,
    patron_id: int,
    version: int,
    channels: Mapping[NoticeEvent, Preference],
    *,
    staff: str,
    clock: Clock = utcnow,
) -> PatronPreferences:
    """Store the events in ``channels``; an event left out keeps what it has.

    Raises:
        ValidationError: a preference cannot be used (no channel, a repeat, a password reset without e-mail);
            ``problems`` maps each event's name to its sentence.
        ConcurrentEditError: the patron changed on another workstation since ``version`` was read.
        NotFoundError: the patron was removed.
    """
    problems = preference_problems(channels)
    if problems:
        raise ValidationError("These channel preferences cannot be saved.", problems)
    try:
        with db.write() as session:
            patron = session.get(Patron, patron_id)
            if patron is None:
                raise NotFoundError("That patron is no longer in the database.")
            if patron.version_id != version:
                raise ConcurrentEditError(
                    "Another workstation changed this patron since the card was opened; reopen it to see the change."
                )
            now = clock()
            if apply_preferences(session, patron, channels, staff=staff, now=now):
                patron.updated_at = now  # bumps version_id: a card opened earlier gets a conflict
    except StaleDataError:
        raise ConcurrentEditError("Another workstation changed this patron at the same moment; try again.") from None
    return load_preferences(db, patron_id)


def apply_preferences(
    session: Session, patron: Patron, channels: Mapping[NoticeEvent, Preference], *, staff: str, now: datetime
) -> bool:
    """Write ``channels`` (already checked) into the caller's transaction, with a history line per change.

    The default is the patron's notification method as it is in the session, so a card that changes the method
    and the preferences together compares against the new method. Returns True when anything was written (the
    caller bumps the patron's version).
    """
    existing = {
        row.event: row
        for row in session.scalars(
            select(PatronChannelPreference).where(PatronChannelPreference.patron_id == patron.id)
        )
    }
    changed = False
    for event, chosen in channels.items():
        default = effective_default(patron.notification_method, event)
        row = existing.get(event.value)
        old = row.channels if row is not None else format_preference(default)
        new = format_preference(chosen)
        if old == new and (row is not None or chosen == default):
            continue
        if chosen == default:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(
                PatronChannelPreference(
                    patron_id=patron.id, event=event.value, channels=new, updated_by=staff, updated_at=now
                )
            )
        else:
            row.channels, row.updated_by, row.updated_at = new, staff, now
        if old != new:
            session.add(
                PatronHistory(
                    patron_id=patron.id,
                    field=f"{HISTORY_PREFIX}{event.value}",
                    old_value=old,
                    new_value=new,
                    changed_by=staff,
                    changed_at=now,
                )
            )
        changed = True
    return changed


def apply_carrier(session: Session, patron: Patron, carrier: str, *, staff: str, now: datetime) -> bool:
    """Set the patron's SMS carrier (the gateway's carrier; empty = unknown) with a history line.

    Returns True when it changed (the caller bumps the patron's version).
    """
    carrier = " ".join(carrier.split())
    if carrier == patron.sms_carrier:
        return False
    session.add(
        PatronHistory(
            patron_id=patron.id,
            field=CARRIER_FIELD,
            old_value=patron.sms_carrier,
            new_value=carrier,
            changed_by=staff,
            changed_at=now,
        )
    )
    patron.sms_carrier = carrier
    return True


def carrier_problem(carrier: str) -> str:
    """Why a typed carrier cannot be stored ('' when it can)."""
    limit = CARRIER_LIMIT
    text = " ".join(carrier.split())
    return f"The carrier name is {len(text)} characters long; at most {limit} are kept." if len(text) > limit else ""
