"""Fallback: when a patron's channel fails for good, the notice moves on to the patron's next channel (issue 18).

Why a pass of its own rather than a step of each sender: a notice ends for good in several places (the e-mail
sender's 5xx or "gave up after 12 attempts", the SMS sender's provider refusal, a notice created FAILED because
there is no address on file, a bounce report days later). One set-based pass over the outbox after each sending
loop finds them all the same way, whichever System Manager or bounce handler ended them.

A notice falls back when all of these hold:

* it is of channel ``email`` or ``sms``, ended ``failed`` or ``bounced``, and is an arrival's notice (``arrival:``
  key) or an arrival's fallback (``fallback:`` key), or a hold-shelf reminder or "hold ended" notice
  (``reminder:``/``expired:`` key, their own fallbacks included);
* it still applies. An arrival's: its request waits at Awaiting Customer Contact, with the notice's Tracking row
  still the newest (a bounce moves the request back to the desk with a new Tracking row, whose own arrival
  notice is created FAILED "e-mail bounced" and falls back in its turn). A reminder's: its request is on the
  shelf in the same stay and the step's window is still open — the sender's own guard,
  :func:`desktop.services.notices.shelf.stale_reason`, so no late reminder is made. A "hold ended" notice's: its
  request waits at Awaiting Return to Lender since that expiry;
* it failed because of the patron's channel, not because of ours: a template that cannot be rendered, a notice
  that cannot be prepared or built (no From address, a broken To line in the template), damaged reset data do
  not fall back (:data:`NOT_THE_PATRONS_CHANNEL`) — the next channel would not help, and staff must fix the cause;
* it has no successor yet, inserted with ``ON CONFLICT DO NOTHING`` on its dedupe key, so several System
  Managers running this pass at once make one successor.

The successor's dedupe key:

* an arrival's: ``fallback:<failed notice id>``;
* a reminder's or "hold ended" notice's: the shelf notice's own key with ``:fb<failed notice id>`` added
  (:func:`desktop.services.notices.shelf.successor_key`; ``reminder:<request>:<tracking>:<step>:fb<id>``, an
  earlier ``:fb`` part replaced, so the key never grows along a chain). Keeping the shelf key means every rule
  that knows a reminder knows its successor unchanged: it is a shelf notice to the sender's stale guard
  (``dispatch._load_one``) and to the outbox's tidy pass (which leaves shelf notices alone); the hold shelf
  cancels its call or letter when the request leaves the shelf (``shelf._close_hand_reminders``); Contact
  Customers lists it as that step's call or letter (``shelf_contacts.step_number``), counts the calls from it,
  and shows its reason (``text failed: …``). Only the step's number is read out of the key
  (:func:`desktop.services.notices.shelf.reminder_step`).

Staff-sent notices (Send E-mail, Resend: ``staff:`` keys) never fall back (staff chose the address).

The next channel is :func:`desktop.domain.channels.next_channel` of the patron's effective preference (a stored
row, else their notification method — a one-channel list, so a patron without a stored preference is treated as
before): "Pickup reminder" for a reminder, "Item ready for pickup" for an arrival and for a "hold ended" notice
(the preference the sender checks a waiting notice against, ``dispatch._event_of``). A reminder's successor keeps
the step's template (a letter the printed reminder's), a "hold ended" notice's the Pickup Expired one (a letter
the printed one). E-Mail and SMS successors go to the outbox (FAILED at once when there is no
address or number, so they fall back again on the next pass); Phone and Mail successors are ``phone``/``print``
notices, pending, that Contact Customers lists in the Phone and Mail groups with the reason. Every step writes a
history line on both notices.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import String, and_, cast, exists, func, literal, or_, select
from sqlalchemy.orm import Session, aliased, selectinload

from desktop.db.engine import Database
from desktop.db.models import (
    ContactPoint,
    Notification,
    NotificationAttempt,
    Patron,
    PatronChannelPreference,
    PickupLocation,
    Request,
    Tracking,
)
from desktop.domain.channels import (
    Channel,
    NoticeEvent,
    Preference,
    default_preference,
    next_channel,
    parse_preference,
    sms_number,
)
from desktop.domain.clock import as_utc
from desktop.domain.statuses import NOTIFIED_STATUSES, Status
from desktop.services.admin.shelf_settings import read_shelf_settings
from desktop.services.notices import outbox
from desktop.services.notices.notice_context import has_postal_address, primary_contact
from desktop.services.notices.shelf import (
    EXPIRED_PREFIX,
    PHONE,
    PRINT,
    REMINDER_PREFIX,
    SUCCESSOR_MARK,
    StaleCheck,
    is_shelf_notice,
    reminder_step,
    stale_reason,
    successor_key,
)
from desktop.services.notices.templates import PRINT_NOTICE, PRINT_PICKUP_EXPIRED, PRINT_PICKUP_REMINDER

#: The dedupe key of a notice's successor: ``fallback:<failed notice id>``.
FALLBACK_PREFIX = "fallback:"
#: The hold shelf's statuses (a reminder applies while its request has one of them).
_ON_SHELF = tuple(s.value for s in NOTIFIED_STATUSES)
#: Longer than any reminder's window lasts after the reminder is made (from the send hour to midnight, local time,
#: one hour more on the day a DST change adds one): an older failed reminder cannot still apply.
REMINDER_LIFE = timedelta(hours=25)
#: The outcome of the history lines this pass writes (on the failed notice and on its successor).
FALLBACK_OUTCOME = "fallback"
SMS = "sms"
#: Channels whose notices end by themselves (the senders'); ``phone``/``print`` are staff work.
AUTOMATIC = (outbox.EMAIL, SMS)
#: How a successor's channel is stored in the outbox.
OUTBOX_CHANNEL = {Channel.EMAIL: outbox.EMAIL, Channel.SMS: SMS, Channel.PHONE: PHONE, Channel.MAIL: PRINT}
#: Why an SMS successor is not sent: the patron has no phone that takes texts.
NO_MOBILE_REASON = "no mobile number on file for this patron: add a phone at the Cell location on the Contact Info tab"
#: Failure reasons (their beginnings, compared without case) that are ours, not the patron's channel: a broken
#: template, a notice that cannot be prepared or built, damaged reset data. They do not fall back.
NOT_THE_PATRONS_CHANNEL = (
    "template ",
    "the '",
    "cannot prepare",
    "no from address",
    "no recipient",
    "from address",
    "the sender",
    "the stored reset data",
    "no reset link",
    "the notice names no patron",
)
#: Notices per write transaction: short transactions, so staff's saves never wait long behind this pass.
BATCH = 200
#: Ids per ``IN (…)`` list: well under SQLite's and PostgreSQL's limits on bound parameters.
IN_CHUNK = 10_000
#: Longest failure reason carried to the successor (Contact Customers shows it in one cell).
MAX_REASON = 300


def falls_back(reason: str) -> bool:
    """Whether a notice that failed with ``reason`` may move on to the patron's next channel."""
    text = " ".join(reason.split()).casefold()
    return not text.startswith(NOT_THE_PATRONS_CHANNEL)


def failure_reason(channel: str, state: str, reply: str) -> str:
    """``e-mail failed: 550 5.1.1 user unknown`` / ``text failed: …``: the failed notice's reply as the successor
    (and Contact Customers) show it: its first line, trimmed."""
    first = next((" ".join(line.split()) for line in reply.splitlines() if line.strip()), "")
    first = first.split(": add ", 1)[0]  # "no e-mail address on file …: add one …, then Retry": advice for e-mail
    if first.startswith(outbox.BOUNCED_PREFIX):  # created FAILED for a flagged address: it says so already
        first = first.split("; phone or write", 1)[0]
        return first[:MAX_REASON]
    if state == outbox.BOUNCED:
        word = "e-mail bounced" if channel == outbox.EMAIL else "text bounced"
        first = first.removeprefix("bounced: ")
    else:
        word = "e-mail failed" if channel == outbox.EMAIL else "text failed"
    return f"{word}: {first}"[:MAX_REASON] if first else word


@dataclass
class FallbackRun:
    """What one pass did.

    Attributes:
        moved: successors created (one per failed notice), by channel name.
        used_up: failed notices whose patron has no further channel (they stay as they are: Retry failed).
        lines: ``TN 123: e-mail failed: 550 … → Phone``, one per successor.
    """

    moved: dict[str, int] = field(default_factory=dict)
    used_up: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def created(self) -> int:
        """Successors created, all channels."""
        return sum(self.moved.values())

    def describe(self) -> str:
        """``fallbacks 2 (Phone 1, SMS 1)``."""
        if not self.moved:
            return "fallbacks 0"
        return f"fallbacks {self.created} (" + ", ".join(f"{k} {v}" for k, v in sorted(self.moved.items())) + ")"


@dataclass(frozen=True, slots=True)
class _Failed:
    """A failed notice that may fall back, as the candidate query reads it."""

    id: int
    channel: str
    state: str
    reply: str
    request_id: int
    patron_id: int
    tracking_id: int
    request_type: str
    transaction_number: int
    method: str  # the patron's notification method (their preference when none is stored)
    dedupe_key: str = ""
    template_name: str = ""

    @property
    def failed_channel(self) -> Channel:
        """The channel that failed, as preferences name it."""
        return Channel.EMAIL if self.channel == outbox.EMAIL else Channel.SMS

    @property
    def event(self) -> NoticeEvent:
        """The preference whose order the notice follows: a reminder the "Pickup reminder" one; an arrival and a
        "hold ended" notice the "Item ready for pickup" one (the sender checks the same, ``dispatch._event_of``)."""
        return (
            NoticeEvent.PICKUP_REMINDER if self.dedupe_key.startswith(REMINDER_PREFIX) else NoticeEvent.READY_FOR_PICKUP
        )

    @property
    def shelf(self) -> bool:
        """A hold-shelf reminder or "hold ended" notice rather than an arrival's."""
        return is_shelf_notice(self.dedupe_key)

    @property
    def next_key(self) -> str:
        """The dedupe key of this notice's successor."""
        return successor_key(self.dedupe_key, self.id) if self.shelf else f"{FALLBACK_PREFIX}{self.id}"


def _candidates(session: Session, now: datetime, ids: Sequence[int] | None = None) -> list[_Failed]:
    """Failed e-mail and SMS notices with no successor (of ``ids`` if given), oldest first: those of waiting
    arrivals, and the hold shelf's that still apply (:func:`_shelf_candidates`)."""
    found = _arrival_candidates(session, ids) + _shelf_candidates(session, now, ids)
    found.sort(key=lambda failed: failed.id)
    return found


def _arrival_candidates(session: Session, ids: Sequence[int] | None) -> list[_Failed]:
    successor = aliased(Notification)
    latest = select(func.max(Tracking.id)).where(Tracking.request_id == Request.id).correlate(Request).scalar_subquery()
    query = (
        select(Notification.id, Notification.channel, Notification.state, Notification.last_reply,
               Notification.request_id, Request.patron_id, Notification.tracking_id, Request.request_type,
               Request.transaction_number, Patron.notification_method, Notification.dedupe_key,
               Notification.template_name)
        .join(Request, Request.id == Notification.request_id)
        .join(Patron, Patron.id == Request.patron_id)
        .where(
            Notification.state.in_((outbox.FAILED, outbox.BOUNCED)),
            Notification.channel.in_(AUTOMATIC),
            or_(Notification.dedupe_key.like("arrival:%"), Notification.dedupe_key.like(FALLBACK_PREFIX + "%")),
            Request.status == Status.AWAITING_CUSTOMER_CONTACT.value,
            Notification.tracking_id == latest,
            ~exists().where(successor.dedupe_key == literal(FALLBACK_PREFIX) + cast(Notification.id, String)),
        )
        .order_by(Notification.id)
    )  # fmt: skip
    if ids is not None:
        query = query.where(Notification.id.in_(list(ids)))
    return [_Failed(*tuple(row)) for row in session.execute(query)]


def _shelf_candidates(session: Session, now: datetime, ids: Sequence[int] | None) -> list[_Failed]:
    """Failed e-mailed or texted reminders and "hold ended" notices that still apply, with no successor.

    A reminder applies while its request is on the shelf in the same stay and its step's window is still open
    (:func:`desktop.services.notices.shelf.stale_reason`, the sender's own guard: a call made after the window
    would be a late reminder); a "hold ended" notice while its request waits at Awaiting Return to Lender since
    that expiry. The SQL keeps to the statuses, the newest Tracking row and reminders made less than
    :data:`REMINDER_LIFE` ago (a reminder is made inside its window, which ends at the next midnight, so an older
    one cannot apply: failed reminders of past days are not read again every pass); the window is checked here.
    """
    successor = aliased(Notification)
    latest = select(func.max(Tracking.id)).where(Tracking.request_id == Request.id).correlate(Request).scalar_subquery()
    pickup = func.coalesce(Request.pickup_location_id, Patron.pickup_location_id)
    query = (
        select(Notification.id, Notification.channel, Notification.state, Notification.last_reply,
               Notification.request_id, Request.patron_id, Notification.tracking_id, Request.request_type,
               Request.transaction_number, Patron.notification_method, Notification.dedupe_key,
               Notification.template_name, Request.status, Request.status_changed_at, PickupLocation.hold_days,
               pickup)
        .join(Request, Request.id == Notification.request_id)
        .join(Patron, Patron.id == Request.patron_id)
        .outerjoin(PickupLocation, PickupLocation.id == pickup)
        .where(
            Notification.state.in_((outbox.FAILED, outbox.BOUNCED)),
            Notification.channel.in_(AUTOMATIC),
            or_(
                and_(Notification.dedupe_key.like(REMINDER_PREFIX + "%"), Request.status.in_(_ON_SHELF),
                     Notification.created_at > now - REMINDER_LIFE),
                and_(Notification.dedupe_key.like(EXPIRED_PREFIX + "%"),
                     Request.status == Status.AWAITING_RETURN_TO_LENDER.value),
            ),
            Notification.tracking_id == latest,
            ~exists().where(successor.request_id == Notification.request_id,
                            successor.dedupe_key.like(literal("%" + SUCCESSOR_MARK) + cast(Notification.id, String))),
        )
        .order_by(Notification.id)
    )  # fmt: skip
    if ids is not None:
        query = query.where(Notification.id.in_(list(ids)))
    rows = session.execute(query).all()
    if not rows:
        return []
    settings = read_shelf_settings(session)
    found: list[_Failed] = []
    for row in rows:
        values: tuple[Any, ...] = tuple(row)
        failed = _Failed(*values[:12])
        status, notified_at, hold_days, pickup_id = values[12:]
        check = StaleCheck(status, failed.tracking_id, as_utc(notified_at), hold_days, pickup_id)
        if not stale_reason(settings, failed.dedupe_key, failed.tracking_id, check, now):
            found.append(failed)
    return found


def _preferences(
    session: Session, methods: dict[int, str], event: NoticeEvent = NoticeEvent.READY_FOR_PICKUP
) -> dict[int, Preference]:
    """Each patron's effective channels for ``event`` (``methods``: patron id → notification method): the stored
    row if it parses, else the method — the rule of :mod:`desktop.services.patrons.channel_preferences`, read for
    many patrons at once."""
    stored: dict[int, Preference] = {}
    ids = sorted(methods)
    for start in range(0, len(ids), IN_CHUNK):
        rows = session.execute(
            select(PatronChannelPreference.patron_id, PatronChannelPreference.channels).where(
                PatronChannelPreference.patron_id.in_(ids[start : start + IN_CHUNK]),
                PatronChannelPreference.event == event.value,
            )
        )
        for patron_id, text in rows:
            try:
                stored[patron_id] = parse_preference(text)
            except ValueError:
                continue  # edited by hand into something unreadable: the method still gives a way to go
    found: dict[int, Preference] = {}
    for patron_id, method in methods.items():
        try:
            found[patron_id] = stored.get(patron_id) or default_preference(method, event)
        except ValueError:
            found[patron_id] = ()  # a method this version does not know: nothing to move on to
    return found


def _phones(points: Iterable[ContactPoint]) -> list[tuple[str, str, bool]]:
    return [
        (point.normalized or point.value, point.location.name if point.location else "", point.is_primary)
        for point in points
        if point.kind == "phone"
    ]


def _postal(patron: Patron) -> str:
    """The postal address on one line (kept on a letter's notice, so its history says where it was to go)."""
    place = " ".join(p for p in (patron.state, patron.zip) if p)
    town = ", ".join(p for p in (patron.city, place) if p)
    return ", ".join(p.strip() for p in (patron.address1, patron.address2, town) if p.strip())


class _Successor(NamedTuple):
    """What the next channel's notice is: where it goes, and whether it can start at all."""

    channel: str  # as the outbox stores it: email, sms, phone, print
    template: str
    to: str
    state: str  # pending, or failed at once (no address, a flagged address, no mobile number)
    own_reason: str = ""  # why it failed at once


def _successor(failed: _Failed, channel: Channel, patron: Patron) -> _Successor:
    """The notice of ``channel`` that takes over from ``failed``.

    An e-mail or a text with nowhere to go is still made, FAILED with the reason, rather than skipped: staff see
    in the history that the channel was tried, and the next pass moves it on again.
    """
    template = _template(failed, channel)
    if channel is Channel.EMAIL:
        point = primary_contact(patron, outbox.EMAIL)
        if point is None or not point.value.strip():
            return _Successor(outbox.EMAIL, template, "", outbox.FAILED, outbox.NO_EMAIL_REASON)
        if point.bounced_at is not None:
            flagged = outbox.bounced_reason(point.value, point.bounced_at, point.bounce_reason)
            return _Successor(outbox.EMAIL, template, point.value, outbox.FAILED, flagged)
        return _Successor(outbox.EMAIL, template, point.value, outbox.PENDING)
    if channel is Channel.SMS:
        number = sms_number(_phones(patron.contact_points))
        if number is None:
            return _Successor(SMS, template, "", outbox.FAILED, NO_MOBILE_REASON)
        return _Successor(SMS, template, number, outbox.PENDING)
    if channel is Channel.PHONE:
        point = primary_contact(patron, "phone")
        return _Successor(PHONE, template, point.value if point is not None else "", outbox.PENDING)
    return _Successor(PRINT, template, _postal(patron) if has_postal_address(patron) else "", outbox.PENDING)


def _template(failed: _Failed, channel: Channel) -> str:
    """The successor's template: an arrival's notice for its request type, a reminder's step's own (a letter the
    printed reminder), a "hold ended" notice's (a letter the printed one)."""
    if failed.dedupe_key.startswith(REMINDER_PREFIX):
        return PRINT_PICKUP_REMINDER if channel is Channel.MAIL else failed.template_name
    if failed.dedupe_key.startswith(EXPIRED_PREFIX):
        return PRINT_PICKUP_EXPIRED if channel is Channel.MAIL else failed.template_name
    return PRINT_NOTICE if channel is Channel.MAIL else outbox.arrival_template(failed.request_type)


def _advance_batch(session: Session, found: Sequence[_Failed], now: datetime, worker: str, run: FallbackRun) -> None:
    patron_ids = sorted({f.patron_id for f in found})
    patrons = {
        p.id: p
        for p in session.scalars(
            select(Patron)
            .where(Patron.id.in_(patron_ids))
            .options(selectinload(Patron.contact_points).selectinload(ContactPoint.location))
        )
    }
    preferences = _all_preferences(session, found)
    for failed in found:
        patron = patrons.get(failed.patron_id)
        chosen = next_channel(preferences[failed.event].get(failed.patron_id, ()), failed.failed_channel)
        if patron is None or chosen is None or not falls_back(failed.reply):
            continue  # the preference changed since it was read
        reason = failure_reason(failed.channel, failed.state, failed.reply)
        successor = _successor(failed, chosen, patron)
        own = successor.own_reason
        new_id = outbox.insert_notice(
            session,
            dedupe_key=failed.next_key,
            channel=successor.channel,
            template_name=successor.template,
            request_id=failed.request_id,
            patron_id=failed.patron_id,
            tracking_id=failed.tracking_id,
            state=successor.state,
            to_address=successor.to,
            # A call or letter shows the reason in Contact Customers; an e-mail or text says what it follows.
            reason=own or (reason if successor.channel in outbox.HAND_CHANNELS else f"after {reason}"),
            now=now,
        )
        if new_id is None:
            continue  # another System Manager moved it on first
        session.add_all([
            NotificationAttempt(notification_id=failed.id, attempted_at=now, worker=worker, outcome=FALLBACK_OUTCOME,
                                reply=f"moved on to {chosen.value}: notice {new_id}"),
            NotificationAttempt(notification_id=new_id, attempted_at=now, worker=worker, outcome=FALLBACK_OUTCOME,
                                reply=f"after {reason} (notice {failed.id})"),
        ])  # fmt: skip
        if own:
            session.add(NotificationAttempt(notification_id=new_id, attempted_at=now, worker=worker,
                                            outcome=outbox.FAILED, reply=own))  # fmt: skip
        run.moved[chosen.value] = run.moved.get(chosen.value, 0) + 1
        run.lines.append(f"TN {failed.transaction_number}{_which(failed)}: {reason} → {chosen.value}")


def _which(failed: _Failed) -> str:
    """`` reminder 2`` / `` hold ended`` for a shelf notice's line in the summary; nothing for an arrival's."""
    if failed.dedupe_key.startswith(REMINDER_PREFIX):
        return f" reminder {reminder_step(failed.dedupe_key) + 1}"
    return " hold ended" if failed.dedupe_key.startswith(EXPIRED_PREFIX) else ""


def _all_preferences(session: Session, found: Sequence[_Failed]) -> dict[NoticeEvent, dict[int, Preference]]:
    """The patrons' effective channels for each event the notices follow (see :attr:`_Failed.event`)."""
    return {
        event: _preferences(session, {f.patron_id: f.method for f in found if f.event is event}, event)
        for event in (NoticeEvent.READY_FOR_PICKUP, NoticeEvent.PICKUP_REMINDER)
    }


def advance_fallbacks(db: Database, *, now: datetime, worker: str = "System", batch: int = BATCH) -> FallbackRun:
    """Move every notice that failed for good on to its patron's next channel; safe on every workstation at once.

    One read finds the candidates and drops those with nowhere to go (their list is used up, or they failed for
    a reason of ours): those stay as they are and cost no write, however many pile up. The rest are moved in write
    transactions of at most ``batch`` notices, each reading its candidates again under the write lock (so a
    request staff moved meanwhile is passed over) and inserting successors with ``ON CONFLICT DO NOTHING``.

    Measured (November 2026, shared 2-core machine, SQLite, the 1,000,000-request database of
    ``bench/contact_customers_open.py`` with 10,000 waiting arrivals' e-mails failed and 100,000 old failed
    notices): the first pass made 7,022 successors in 7.8 s; each later pass, with 2,978 notices whose list was
    used up, took 0.06 s (1.5 s when the used-up ones were read again in every write batch with their patrons).
    """
    run = FallbackRun()
    with db.read() as session:
        found = _candidates(session, now)
        preferences = _all_preferences(session, found)
    movable: list[int] = []
    for failed in found:
        if not falls_back(failed.reply):
            continue
        if next_channel(preferences[failed.event].get(failed.patron_id, ()), failed.failed_channel) is None:
            run.used_up += 1
        else:
            movable.append(failed.id)
    for start in range(0, len(movable), batch):
        with db.write() as session:
            _advance_batch(session, _candidates(session, now, movable[start : start + batch]), now, worker, run)
    return run


def fallback_steps(session: Session, request_id: int) -> list[tuple[datetime, str, str]]:
    """A request's fallback steps, oldest first, as ``(when, by, text)`` for the request form's History:
    ``e-mail failed: 550 5.1.1 user unknown (notice 12) → phone call (notice 13)``."""
    rows = session.execute(
        select(NotificationAttempt.attempted_at, NotificationAttempt.worker, NotificationAttempt.reply,
               Notification.id, Notification.channel)
        .join(Notification, Notification.id == NotificationAttempt.notification_id)
        .where(Notification.request_id == request_id, NotificationAttempt.outcome == FALLBACK_OUTCOME,
               NotificationAttempt.reply.like("after %"))
        .order_by(NotificationAttempt.id)
    )  # fmt: skip
    return [
        (at, by, f"{reply.removeprefix('after ')} → {CHANNEL_WORDS.get(channel, channel)} (notice {nid})")
        for at, by, reply, nid, channel in rows
    ]


#: How staff read a notice's channel in history lines.
CHANNEL_WORDS = {outbox.EMAIL: "e-mail", SMS: "text message", PHONE: "phone call", PRINT: "printed letter"}


def is_fallback_notice(dedupe_key: str) -> bool:
    """Whether a notice is another's successor (``fallback:<failed notice id>``)."""
    return dedupe_key.startswith(FALLBACK_PREFIX)
