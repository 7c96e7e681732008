"""Contact Customers: every request at Awaiting Customer Contact, grouped by how its patron is told, and the two
manual ways of telling them (a phone call, a printed notice).

The form must open quickly on a busy desk (tens of thousands of waiting requests), so the whole list is ONE
query: requests joined to patrons and pickup locations, with correlated sub-selects (each an index lookup) for
the primary e-mail and phone, the request's latest notice (its e-mail or text, or the call or letter a fallback to
the patron's next channel made: :mod:`desktop.services.notices.fallback`) and its phone calls in the current wait.
A fallback's call or letter puts the row in the Phone or Mail group with the reason; a text being sent puts it in
the E-Mail group, the group of the automatic channels.
Everything returned is plain frozen data; the GUI never sees a session.

Each action (a call outcome, "printed") is one transaction. A request another workstation moved meanwhile is
skipped and reported, never an error for the whole batch: staff at several desks work the same list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from desktop.db.engine import Database
from desktop.db.models import (
    CallLogEntry,
    ContactPoint,
    Notification,
    NotificationAttempt,
    Patron,
    PatronChannelPreference,
    PickupLocation,
    Request,
)
from desktop.domain.channels import Channel, NoticeEvent, parse_preference
from desktop.domain.clock import utcnow
from desktop.domain.methods import NotificationMethod
from desktop.domain.statuses import NOTIFIED_STATUSES, Status
from desktop.services.errors import ValidationError
from desktop.services.notices.fallback import FALLBACK_PREFIX, SMS
from desktop.services.notices.outbox import (
    BOUNCED_PREFIX,
    CANCELLED,
    EMAIL,
    FAILED,
    HAND_CHANNELS,
    NO_TEMPLATE,
    PENDING,
    RETRYABLE_STATES,
    RETRYING,
    SENT,
)
from desktop.services.notices.shelf import is_successor_key
from desktop.services.requests.shelf_contacts import complete_reminder, open_hand_notice, open_reminders, step_number
from desktop.services.requests.status import StatusChange, change_status

#: E-mail notices the System Manager will not send any more: staff may phone or write instead.
GIVEN_UP_STATES: frozenset[str] = frozenset({FAILED, NO_TEMPLATE})


class CallOutcome(StrEnum):
    """What happened when staff phoned a patron."""

    REACHED = "Reached"
    LEFT_VOICEMAIL = "Left voicemail"
    NO_ANSWER = "No answer"

    @property
    def notifies(self) -> bool:
        """Reached and a voicemail both tell the patron; no answer leaves the request waiting."""
        return self is not CallOutcome.NO_ANSWER


@dataclass(frozen=True)
class CallNote:
    """One phone call logged for a request: when, by whom, how it went, and the note typed with it."""

    called_at: datetime
    staff: str
    outcome: str
    note: str

    def line(self) -> str:
        """``Nov 28 14:05 · No answer · tester: rang twice, no voicemail``."""
        note = f": {self.note}" if self.note else ""
        return f"{self.called_at.astimezone():%b %d %H:%M} · {self.outcome} · {self.staff}{note}"


class ContactRow(NamedTuple):
    """One request waiting for its patron to be told, with what staff need to tell them.

    A plain tuple (no per-row ``__dict__``): the form keeps tens of thousands of them, and a refresh compares
    old and new rows with the tuple's C equality rather than a dataclass's Python ``__eq__``.

    Attributes:
        method: the group the row belongs to (the patron's notification method).
        version: the request's version when read, so a caller can tell a row moved meanwhile.
        address: the postal address on one line ("" when the patron has none).
        notice_state: the latest e-mail notice's state (``None``: the System Manager has not queued one yet).
        notice_reply: the server's last reply (why it is retrying or failed).
        notice_next_at: when a retrying notice is tried again.
        call_attempts: calls logged since the request started waiting (all of them unanswered, or it would
            have moved on).
        calls: those calls with their notes, oldest first (shown in the Phone group's tooltip and column).
    """

    request_id: int
    transaction_number: int
    version: int
    patron_id: int
    patron_name: str
    method: NotificationMethod
    email: str
    phone: str
    address: str
    has_address: bool
    title: str
    pickup: str
    waiting_since: datetime
    days_waiting: int
    notice_state: str | None = None
    notice_reply: str = ""
    notice_attempts: int = 0
    notice_next_at: datetime | None = None
    call_attempts: int = 0
    last_call_at: datetime | None = None
    calls: tuple[CallNote, ...] = ()
    reminder: int = 0  # a hold-shelf reminder call or letter (its 1-based step); 0: the arrival
    hold_ended: bool = False  # the "hold ended" call or letter of a request going back to the lender
    #: The channel of the arrival's newest notice (``email``, ``sms``, or the ``phone``/``print`` a fallback made).
    notice_channel: str = ""

    @property
    def last_call_note(self) -> str:
        """The newest note typed with a call in this wait (``""``: none)."""
        return next((c.note for c in reversed(self.calls) if c.note), "")

    @property
    def display_title(self) -> str:
        """The title, marked "Reminder N" on a hold-shelf reminder's row, "Hold ended" on an expiry's."""
        if self.hold_ended:
            return f"Hold ended · {self.title}"
        return f"Reminder {self.reminder} · {self.title}" if self.reminder else self.title

    @property
    def contact(self) -> str:
        """The way this row's patron is reached: e-mail, phone or postal address."""
        if self.method is NotificationMethod.EMAIL:
            return self.email
        if self.method is NotificationMethod.PHONE:
            return self.phone
        return self.address

    @property
    def notice_text(self) -> str:
        """The notice's state as staff read it (``text message …`` when the newest is a text)."""
        text = notice_state_text(self.notice_state, self.notice_reply, self.notice_attempts, self.notice_next_at)
        return f"text message {text}" if self.notice_channel == SMS else text

    @property
    def retryable(self) -> bool:
        """An e-mail row whose notice staff may send again (Retry failed)."""
        return self.method is NotificationMethod.EMAIL and self.notice_state in RETRYABLE_STATES

    @property
    def email_bounced(self) -> bool:
        """The patron's e-mail address bounced: the row is in the Phone or Mail group, ``notice_reply`` says why."""
        return self.notice_state == FAILED and self.notice_reply.startswith(BOUNCED_PREFIX)

    @property
    def fell_back(self) -> bool:
        """The automatic channels failed and the patron's next channel is a call or a letter (issue 18):
        ``notice_reply`` says why (``e-mail failed: 550 …``)."""
        return self.notice_channel in HAND_CHANNELS and self.notice_state == PENDING

    @property
    def shows_reason(self) -> bool:
        """The Phone or Mail group shows ``notice_reply`` beside the row: why the e-mail or text did not do."""
        return self.email_bounced or self.fell_back

    @property
    def email_given_up(self) -> bool:
        """An e-mail row whose notice will not be sent: it may be handled by phone or mail from the form."""
        return self.method is NotificationMethod.EMAIL and self.notice_state in GIVEN_UP_STATES


#: A ContactRow kept as a plain ``tuple`` (its fields in order, ``method`` as its text value): nothing in it is a
#: container, so Python's garbage collector untracks it. 50,000 tracked rows made every full collection — run by
#: whichever thread allocates, holding the GIL — take 0.5 s and stall the window at each refresh.
PlainRow = tuple[Any, ...]
_METHOD = ContactRow._fields.index("method")
_CALLS = ContactRow._fields.index("calls")
_METHODS = {m.value: m for m in NotificationMethod}


def as_row(plain: PlainRow) -> ContactRow:
    """The ContactRow of a plain row (made when a row is shown or acted on)."""
    return ContactRow._make((*plain[:_METHOD], _METHODS[plain[_METHOD]], *plain[_METHOD + 1 :]))


def as_plain(row: ContactRow) -> PlainRow:
    """A ContactRow as a plain, untracked tuple."""
    return (*row[:_METHOD], row.method.value, *row[_METHOD + 1 :])


@dataclass(frozen=True)
class PlainGroups:
    """The Contact Customers list as plain rows (:data:`PlainRow`), for the form that keeps 50,000 of them."""

    email: tuple[PlainRow, ...] = ()
    phone: tuple[PlainRow, ...] = ()
    mail: tuple[PlainRow, ...] = ()
    loaded_at: datetime = field(default_factory=utcnow)

    def group(self, method: NotificationMethod) -> tuple[PlainRow, ...]:
        """The rows of one group."""
        return {NotificationMethod.EMAIL: self.email, NotificationMethod.PHONE: self.phone}.get(method, self.mail)

    @property
    def total(self) -> int:
        """Requests waiting, all groups together."""
        return len(self.email) + len(self.phone) + len(self.mail)


@dataclass(frozen=True)
class ContactGroups:
    """The Contact Customers list: the three groups, each in transaction-number order."""

    email: tuple[ContactRow, ...] = ()
    phone: tuple[ContactRow, ...] = ()
    mail: tuple[ContactRow, ...] = ()
    loaded_at: datetime = field(default_factory=utcnow)

    def group(self, method: NotificationMethod) -> tuple[ContactRow, ...]:
        """The rows of one group."""
        return {NotificationMethod.EMAIL: self.email, NotificationMethod.PHONE: self.phone}.get(method, self.mail)

    @property
    def total(self) -> int:
        """Requests waiting, all groups together."""
        return len(self.email) + len(self.phone) + len(self.mail)


@dataclass(frozen=True)
class Skipped:
    """A selected request that was left alone, and why (shown to staff)."""

    transaction_number: int
    reason: str


@dataclass(frozen=True)
class ActionResult:
    """What an action did: requests moved, calls logged without a move, and requests skipped."""

    moved: tuple[StatusChange, ...] = ()
    logged: tuple[int, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    reminded: tuple[int, ...] = ()  # hold-shelf reminders made (the request stays on the shelf)
    ended: tuple[int, ...] = ()  # "hold ended" calls or letters made (the request still goes back to the lender)

    def summary(self) -> str:
        """One or two sentences for the form's message bar."""
        parts = []
        if self.moved:
            parts.append(f"{len(self.moved)} moved to {self.moved[0].to_status}.")
        if self.logged:
            parts.append(f"{len(self.logged)} call(s) logged; still waiting.")
        if self.reminded:
            parts.append(f"{len(self.reminded)} pickup reminder(s) recorded; still on the hold shelf.")
        if self.ended:
            parts.append(f"{len(self.ended)} patron(s) told the hold ended; still going back to the lender.")
        if self.skipped:
            details = "; ".join(f"{s.transaction_number}: {s.reason}" if s.transaction_number else s.reason
                                for s in self.skipped)  # fmt: skip
            parts.append(f"{len(self.skipped)} skipped ({details}).")
        return " ".join(parts) or "Nothing to do."


def notice_state_text(state: str | None, reply: str = "", attempts: int = 0, next_at: datetime | None = None) -> str:
    """How an e-mail notice's state reads in words: ``pending``, ``retrying at 14:05 (attempt 2): reason``,
    ``failed: reason`` (Contact Customers' Notice column and the request form's Notifications tab)."""
    reply = " ".join(reply.split())
    if state is None:
        return "waiting for the System Manager to queue it"
    if state == PENDING:
        return "pending"
    if state == RETRYING:
        when = ""
        if next_at is not None:
            local, today = next_at.astimezone(), utcnow().astimezone()
            when = f" at {local:%H:%M}" if local.date() == today.date() else f" at {local:%b %d %H:%M}"
        tries = f" (attempt {attempts})" if attempts else ""
        return f"retrying{when}{tries}: {reply}" if reply else f"retrying{when}{tries}"
    if state == FAILED:
        return f"failed: {reply}" if reply else "failed"
    if state == NO_TEMPLATE:
        return "no template: not sent"
    if state == SENT:
        return "sent"
    if state == CANCELLED:
        return f"cancelled: {reply}" if reply else "cancelled"
    return state


# ------------------------------------------------------------------------------------------------- reading


def _contact_value(kind: str) -> Any:
    """Correlated sub-select: the patron's primary contact point of ``kind`` (else the first), with extension."""
    shown = case(
        (ContactPoint.extension != "", ContactPoint.value + literal(" ext. ") + ContactPoint.extension),
        else_=ContactPoint.value,
    )
    return (
        select(shown)
        .where(ContactPoint.patron_id == Patron.id, ContactPoint.kind == kind)
        .order_by(ContactPoint.is_primary.desc(), ContactPoint.position, ContactPoint.id)
        .limit(1)
        .correlate(Patron)
        .scalar_subquery()
    )


def contact_customers_query() -> Select[*tuple[Any, ...]]:
    """The one statement behind the form (also timed alone by ``bench/contact_customers_open.py``).

    Besides the requests at Awaiting Customer Contact it reads the hold shelf's reminder calls and letters still
    to make (requests on the shelf with a pending ``phone``/``print`` reminder notice); their calls are counted
    from that reminder on, so the call log counts per step.
    """
    reminder = aliased(Notification)
    # On the shelf, or just off it with a "hold ended" call or letter to make (issue 17).
    shelf_statuses = (*(s.value for s in NOTIFIED_STATUSES), Status.AWAITING_RETURN_TO_LENDER.value)
    open_reminder = and_(
        Notification.state == "pending",
        Notification.channel.in_(("phone", "print")),
        or_(Notification.dedupe_key.like("reminder:%"), Notification.dedupe_key.like("expired:%")),
    )
    reminder_id = (  # a reminder of a request that left the shelf (an expiry since undone) is not one to make
        select(func.max(Notification.id))
        .where(Notification.request_id == Request.id, open_hand_notice(Notification))
        .correlate(Request)
        .scalar_subquery()
    )
    request_pickup = aliased(PickupLocation)
    patron_pickup = aliased(PickupLocation)
    earlier = aliased(Notification)
    latest_notice = (  # the arrival's chain: its e-mail or text, or the call or letter a fallback made
        select(func.max(earlier.id))
        .where(earlier.request_id == Request.id, _in_chain(earlier))
        .correlate(Request)
        .scalar_subquery()
    )
    # The patron's own order for "Item ready for pickup" (issue 18), when stored: its first channel picks the group.
    ready_preference = (
        select(PatronChannelPreference.channels)
        .where(
            PatronChannelPreference.patron_id == Patron.id,
            PatronChannelPreference.event == NoticeEvent.READY_FOR_PICKUP.value,
        )
        .correlate(Patron)
        .scalar_subquery()
    )
    since = func.coalesce(reminder.created_at, Request.status_changed_at)
    in_this_wait = and_(CallLogEntry.request_id == Request.id, CallLogEntry.called_at >= since)
    calls = select(func.count(CallLogEntry.id)).where(in_this_wait).correlate(Request, reminder).scalar_subquery()
    last_call = (
        select(func.max(CallLogEntry.called_at)).where(in_this_wait).correlate(Request, reminder).scalar_subquery()
    )
    return (
        select(
            Request.id,
            Request.transaction_number,
            Request.version_id,
            Request.request_type,
            Request.loan_title,
            Request.photo_journal_title,
            Request.photo_article_title,
            Request.status_changed_at,
            Patron.id,
            Patron.first_name,
            Patron.last_name,
            Patron.username,
            Patron.notification_method,
            Patron.address1,
            Patron.address2,
            Patron.city,
            Patron.state,
            Patron.zip,
            func.coalesce(request_pickup.name, patron_pickup.name, ""),
            _contact_value("email"),
            _contact_value("phone"),
            Notification.state,
            Notification.last_reply,
            Notification.attempts,
            Notification.next_attempt_at,
            Notification.channel,
            ready_preference,
            calls,
            last_call,
            reminder.dedupe_key,
            reminder.channel,
            reminder.last_reply,
        )
        .join(Patron, Patron.id == Request.patron_id)
        .outerjoin(request_pickup, request_pickup.id == Request.pickup_location_id)
        .outerjoin(patron_pickup, patron_pickup.id == Patron.pickup_location_id)
        .outerjoin(Notification, Notification.id == latest_notice)
        .outerjoin(reminder, reminder.id == reminder_id)
        .where(
            or_(
                Request.status == Status.AWAITING_CUSTOMER_CONTACT.value,
                and_(
                    Request.status.in_(shelf_statuses),
                    Request.id.in_(select(Notification.request_id).where(open_reminder)),
                    reminder_id.is_not(None),
                ),
            )
        )
        .order_by(Request.transaction_number)
    )


def _in_chain(notice: type[Notification] | Any) -> Any:
    """SQL: ``notice`` tells the patron about an arrival automatically (e-mail, text), or is a fallback's call or
    letter (``fallback:`` key; the hold shelf's calls and letters are listed apart)."""
    return or_(notice.channel.in_((EMAIL, SMS)), notice.dedupe_key.like(FALLBACK_PREFIX + "%"))


def _method(value: str) -> NotificationMethod:
    try:
        return NotificationMethod(value)
    except ValueError:  # a method this version does not know (SMS one day): someone has to write to them
        return NotificationMethod.MAIL


#: The Contact Customers group of a preference's first channel: texts are sent like e-mails, by the System Manager.
_GROUP_OF_CHANNEL = {
    Channel.EMAIL: NotificationMethod.EMAIL,
    Channel.SMS: NotificationMethod.EMAIL,
    Channel.PHONE: NotificationMethod.PHONE,
    Channel.MAIL: NotificationMethod.MAIL,
}


def _first_group(stored: str) -> NotificationMethod:
    """The group of a patron whose "Item ready for pickup" order is stored: that of its first channel.

    A patron whose method is E-Mail but who asked to be phoned first gets no e-mail notice, so the row belongs in
    the Phone group, not among the e-mails the System Manager will send. A damaged stored value counts as Mail
    (someone has to write to them), like an unknown method.
    """
    try:
        channels = parse_preference(stored)
    except ValueError:
        return NotificationMethod.MAIL
    return _GROUP_OF_CHANNEL[channels[0]] if channels else NotificationMethod.MAIL


def postal_line(address1: str, address2: str, city: str, state: str, zip_: str) -> str:
    """The postal address on one line, as the Mail group shows it."""
    place = " ".join(p for p in (state, zip_) if p)
    town = ", ".join(p for p in (city, place) if p)
    return ", ".join(p.strip() for p in (address1, address2, town) if p.strip())


def _title(request_type: str, loan_title: str, journal: str, article: str) -> str:
    # Same rule as Request.title, on columns (no ORM object is built for 20,000 rows).
    return (article or journal) if request_type == "Article" else loan_title


def load_contact_customers(db: Database, *, now: datetime | None = None) -> ContactGroups:
    """Read the Contact Customers list in one query (as ContactRows; :func:`load_contact_rows` for plain rows)."""
    plain = load_contact_rows(db, now=now)
    return ContactGroups(
        email=tuple(map(as_row, plain.email)),
        phone=tuple(map(as_row, plain.phone)),
        mail=tuple(map(as_row, plain.mail)),
        loaded_at=plain.loaded_at,
    )


def load_contact_rows(db: Database, *, now: datetime | None = None) -> PlainGroups:
    """Read the Contact Customers list in one query, as plain rows.

    Memory and the garbage collector matter at 50,000 waiting requests: the result is streamed (never all driver
    rows at once), each row is a plain tuple of plain values (untracked by the collector), and the texts many
    rows repeat (a patron's name and address, the pickup desk) are shared through a per-load cache instead of one
    copy per row.
    """
    now = now or utcnow()
    groups: dict[NotificationMethod, list[PlainRow]] = {m: [] for m in NotificationMethod}
    reminder_rows: list[Any] = []
    shared: dict[Any, Any] = {}  # one object per distinct value (names, addresses, desks, states)
    one = shared.setdefault
    with db.read() as session:
        # ``yield_per``: an ORM execution otherwise fetches every driver row first (60 MB at 50,000 rows).
        for values in session.execute(contact_customers_query().execution_options(yield_per=2_000)):
            if values[-3] is not None:
                reminder_rows.append(tuple(values))
                continue
            (rid, tn, version, rtype, loan, journal, article, since, pid, first, last, username, method,
             a1, a2, city, state, zip_, pickup, email, phone, n_state, n_reply, n_attempts, n_next, n_channel,
             ready, calls, last_call, _key, _channel, _reason) = values  # fmt: skip
            group = _first_group(ready) if ready else _method(method)
            if n_channel in HAND_CHANNELS and n_state == PENDING:  # the patron's next channel is a call or letter
                group = NotificationMethod.PHONE if n_channel == "phone" else NotificationMethod.MAIL
            elif n_channel == SMS and n_state in (PENDING, RETRYING):  # being texted: the automatic channels' group
                group = NotificationMethod.EMAIL
            elif group is NotificationMethod.EMAIL and n_state == FAILED and (n_reply or "").startswith(BOUNCED_PREFIX):
                # The address bounced (issue 19): the desk phones, or writes when there is no phone; the reason
                # shows.
                group = NotificationMethod.PHONE if phone else NotificationMethod.MAIL
            patron = shared.get(pid)
            if patron is None:
                patron = shared[pid] = (
                    " ".join(p for p in (first, last) if p) or username,
                    one(email or "", email or ""),
                    one(phone or "", phone or ""),
                    postal_line(a1, a2, city, state, zip_),
                    bool(a1.strip() and (city.strip() or zip_.strip())),
                )
            name, email_text, phone_text, address, has_address = patron
            title = _title(rtype, loan, journal, article)
            groups[group].append(
                (rid, tn, version, pid, name, group.value, email_text, phone_text, address, has_address,
                 one(title, title), one(pickup, pickup), since, max(0, (now - since).days),
                 None if n_state is None else one(n_state, n_state), n_reply or "", n_attempts or 0, n_next,
                 calls or 0, last_call, (), 0, False, one(n_channel or "", n_channel or ""))
            )  # fmt: skip
    for values in reminder_rows:  # hold-shelf reminders to make by hand: the same columns, counted per step
        key, channel, reason = values[-3:]
        group = NotificationMethod.PHONE if channel == "phone" else NotificationMethod.MAIL
        step = step_number(key)
        row = _row_from(values, group, now)._replace(
            reminder=step, hold_ended=step == 0, call_attempts=values[-5] or 0, last_call_at=values[-4]
        )
        if is_successor_key(key):  # the e-mailed or texted reminder failed: the row says why (``text failed: …``)
            row = row._replace(notice_state=PENDING, notice_reply=reason or "", notice_channel=channel)
        groups[group].append(as_plain(row))
    for rows in groups.values():
        rows.sort(key=itemgetter(1))  # transaction number
    attempts = ContactRow._fields.index("call_attempts")
    called = [(row[0], row[12]) for g in (NotificationMethod.PHONE, NotificationMethod.EMAIL) for row in groups[g]
              if row[attempts]]  # fmt: skip
    if called:
        notes = call_notes(db, dict(called))
        for group, rows in groups.items():
            groups[group] = [(*r[:_CALLS], notes.get(r[0], ()), *r[_CALLS + 1 :]) if r[attempts] else r for r in rows]
    return PlainGroups(
        email=tuple(groups[NotificationMethod.EMAIL]),
        phone=tuple(groups[NotificationMethod.PHONE]),
        mail=tuple(groups[NotificationMethod.MAIL]),
        loaded_at=now,
    )


def call_notes(db: Database, since: dict[int, datetime]) -> dict[int, tuple[CallNote, ...]]:
    """The calls (with their notes) of each request since the given time (its current wait), oldest first.

    A second, small query: only requests that have calls in this wait, in chunks (SQLite's parameter limit).
    """
    ids = sorted(since)
    found: dict[int, list[CallNote]] = {}
    with db.read() as session:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = session.scalars(
                select(CallLogEntry)
                .where(CallLogEntry.request_id.in_(chunk))
                .order_by(CallLogEntry.called_at, CallLogEntry.id)
            )
            for entry in rows:
                if entry.called_at >= since[entry.request_id]:
                    found.setdefault(entry.request_id, []).append(
                        CallNote(entry.called_at, entry.staff, entry.outcome, entry.note)
                    )
    return {rid: tuple(notes) for rid, notes in found.items()}


# ---------------------------------------------------------------------------------------- eligibility rules


def _row_from(values: Any, group: NotificationMethod, now: datetime) -> ContactRow:
    (rid, tn, version, rtype, loan, journal, article, since, pid, first, last, username, _method_value,
     a1, a2, city, state, zip_, pickup, email, phone, *_rest) = values  # fmt: skip
    return ContactRow(request_id=rid, transaction_number=tn, version=version, patron_id=pid,
                      patron_name=" ".join(p for p in (first, last) if p) or username, method=group,
                      email=email or "", phone=phone or "", address=postal_line(a1, a2, city, state, zip_),
                      has_address=bool(a1.strip() and (city.strip() or zip_.strip())),
                      title=_title(rtype, loan, journal, article), pickup=pickup, waiting_since=since,
                      days_waiting=max(0, (now - since).days))  # fmt: skip


def phone_refusals(rows: Iterable[ContactRow]) -> list[ContactRow]:
    """Rows that may not be marked as notified by phone: only Phone rows and given-up e-mails may."""
    return [r for r in rows if not (r.method is NotificationMethod.PHONE or r.email_given_up)]


def print_refusals(rows: Iterable[ContactRow]) -> list[ContactRow]:
    """Rows that may not get a printed notice: e-mails the System Manager is still sending."""
    return [r for r in rows if r.method is NotificationMethod.EMAIL and not r.email_given_up]


def _why_shown(row: ContactRow) -> str:
    if row.method is NotificationMethod.EMAIL:
        return row.notice_text
    return row.contact or "no contact details"


def refusal_message(rows: Sequence[ContactRow], action: str) -> str:
    """The message shown when a selection holds rows an action cannot take."""
    listed = ", ".join(f"{r.transaction_number} ({r.method.value}: {_why_shown(r)})" for r in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    if action == "phone":
        return (
            "Only Phone requests, or e-mails that failed, can be marked as notified via phone. "
            f"Not allowed: {listed}{more}. Deselect them and try again."
        )
    return (
        "E-mail notices still being sent cannot be printed (the patron would be told twice). "
        f"Not allowed: {listed}{more}. Deselect them, or wait until the e-mail fails."
    )


# ------------------------------------------------------------------------------------------------- actions


def _latest_notice_states(session: Session, request_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """The state and channel of each request's newest arrival notice; ``failed`` for a fallback's call or letter
    still to make (the automatic channels are used up: staff may phone or write, as after a failed e-mail)."""
    latest = (
        select(Notification.request_id, func.max(Notification.id).label("nid"))
        .where(Notification.request_id.in_(request_ids), _in_chain(Notification))
        .group_by(Notification.request_id)
        .subquery()
    )
    rows = session.execute(
        select(latest.c.request_id, Notification.state, Notification.channel).join(
            Notification, Notification.id == latest.c.nid
        )
    )
    return {
        rid: (FAILED if channel in HAND_CHANNELS and state == PENDING else state, channel)
        for rid, state, channel in rows
    }


def _complete_fallbacks(session: Session, request_id: int, how: str, staff: str, now: datetime) -> None:
    """Mark the request's open fallback calls and letters done (sent by ``staff``): the patron was told."""
    open_ = session.scalars(
        select(Notification).where(
            Notification.request_id == request_id,
            Notification.state == PENDING,
            Notification.channel.in_(HAND_CHANNELS),
            Notification.dedupe_key.like(FALLBACK_PREFIX + "%"),
        )
    )
    for notice in open_:
        reply = f"{how} by {staff}"
        notice.state, notice.sent_at, notice.updated_at, notice.last_reply = SENT, now, now, reply
        notice.attempts = (notice.attempts or 0) + 1
        session.add(NotificationAttempt(notification_id=notice.id, attempted_at=now, worker=staff, outcome=SENT,
                                        reply=reply))  # fmt: skip


def _lock_waiting(session: Session, request_ids: Sequence[int]) -> list[Request]:
    """The selected requests, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's write lock is
    taken at BEGIN IMMEDIATE), with their patrons loaded in the same round trip."""
    from sqlalchemy.orm import joinedload

    stmt = (
        select(Request)
        .where(Request.id.in_(list(request_ids)))
        .options(joinedload(Request.patron))
        .order_by(Request.transaction_number)
        .with_for_update(of=Request)
    )
    return list(session.scalars(stmt).unique())


def _missing(request_ids: Sequence[int], found: Sequence[Request]) -> list[Skipped]:
    have = {r.id for r in found}
    # 0: the transaction number cannot be read any more; the reason names the request instead.
    return [Skipped(0, f"request id {rid} was deleted meanwhile") for rid in request_ids if rid not in have]


def _moved_elsewhere(request: Request) -> Skipped | None:
    if request.status != Status.AWAITING_CUSTOMER_CONTACT.value:
        return Skipped(request.transaction_number, f"changed on another workstation, now at {request.status!r}")
    return None


def log_calls(
    db: Database,
    request_ids: Sequence[int],
    outcome: CallOutcome,
    staff: str,
    *,
    note: str = "",
    now: datetime | None = None,
) -> ActionResult:
    """Record a phone call for each selected request, in one transaction.

    Reached and Left voicemail move the request to Customer Notified via Phone (Tracking written through
    :func:`desktop.services.requests.status.change_status`); No answer only logs the attempt, so the request keeps
    waiting and the form shows how often it was tried.

    Requests no longer waiting, or whose patron may no longer be phoned (the method changed to Mail, or the
    e-mail was sent after all), are skipped and reported; the rest proceed.
    """
    if not staff.strip():
        raise ValidationError("A staff name is needed to log a call.", {"staff": "required"})
    note = note.strip()
    if len(note) > 1000:
        raise ValidationError("The call note is longer than 1,000 characters.", {"note": "too long"})
    now = now or utcnow()
    moved: list[StatusChange] = []
    logged: list[int] = []
    reminded: list[int] = []
    ended: list[int] = []
    with db.write() as session:
        requests = _lock_waiting(session, request_ids)
        skipped = _missing(request_ids, requests)
        notices = _latest_notice_states(session, [r.id for r in requests])
        reminders = open_reminders(session, [r.id for r in requests])
        for request in requests:
            reminder = reminders.get(request.id)
            if reminder is not None and reminder.channel == "phone":  # a hold-shelf reminder call: no move
                text = f"{reminder.label}: {outcome.value}" + (f": {note}" if note else "")
                session.add(CallLogEntry(request_id=request.id, outcome=outcome.value, note=text[:1000], staff=staff,
                                         called_at=now))  # fmt: skip
                if outcome.notifies:
                    complete_reminder(session, reminder, f"{reminder.label.lower()} by phone ({outcome.value})",
                                      staff, now)  # fmt: skip
                    (ended if reminder.expired else reminded).append(request.transaction_number)
                else:
                    logged.append(request.transaction_number)
                continue
            problem = _moved_elsewhere(request)
            method = _method(request.patron.notification_method)
            if problem is None and method is not NotificationMethod.PHONE:
                if method is NotificationMethod.MAIL:
                    problem = Skipped(request.transaction_number, "the patron is now notified by Mail")
                elif (state := notices.get(request.id)) is None or state[0] not in GIVEN_UP_STATES:
                    what = "text message" if state is not None and state[1] == SMS else "e-mail notice"
                    problem = Skipped(request.transaction_number, f"its {what} has not failed (it is being sent)")
            if problem is not None:
                skipped.append(problem)
                continue
            session.add(
                CallLogEntry(request_id=request.id, outcome=outcome.value, note=note, staff=staff, called_at=now)
            )
            if not outcome.notifies:
                logged.append(request.transaction_number)
                continue
            previous = request.status
            tracking = change_status(
                session, request, Status.NOTIFIED_VIA_PHONE, staff, now=now,
                note=f"{outcome.value}: {note}" if note else outcome.value,
            )  # fmt: skip
            _complete_fallbacks(session, request.id, f"notified via phone ({outcome.value})", staff, now)
            moved.append(_change(request, previous, tracking.id, staff, now))
    return ActionResult(tuple(moved), tuple(logged), tuple(skipped), tuple(reminded), tuple(ended))


def mark_printed(db: Database, request_ids: Sequence[int], staff: str, *, now: datetime | None = None) -> ActionResult:
    """After staff confirm the notices printed: move those requests to Customer Notified via Mail.

    One transaction; requests moved meanwhile on another workstation are skipped and reported.
    """
    if not staff.strip():
        raise ValidationError("A staff name is needed to record printed notices.", {"staff": "required"})
    now = now or utcnow()
    moved: list[StatusChange] = []
    reminded: list[int] = []
    ended: list[int] = []
    with db.write() as session:
        requests = _lock_waiting(session, request_ids)
        skipped = _missing(request_ids, requests)
        reminders = open_reminders(session, [r.id for r in requests])
        for request in requests:
            reminder = reminders.get(request.id)
            if reminder is not None and reminder.channel == "print":  # a hold-shelf reminder letter: no move
                complete_reminder(session, reminder, f"{reminder.label.lower()} letter printed", staff, now)
                (ended if reminder.expired else reminded).append(request.transaction_number)
                continue
            problem = _moved_elsewhere(request)
            if problem is not None:
                skipped.append(problem)
                continue
            previous = request.status
            tracking = change_status(session, request, Status.NOTIFIED_VIA_MAIL, staff, now=now, note="printed notice")
            _complete_fallbacks(session, request.id, "notice printed", staff, now)
            moved.append(_change(request, previous, tracking.id, staff, now))
    return ActionResult(tuple(moved), (), tuple(skipped), tuple(reminded), tuple(ended))


def _change(request: Request, previous: str, tracking_id: int, staff: str, now: datetime) -> StatusChange:
    return StatusChange(
        request_id=request.id,
        transaction_number=request.transaction_number,
        from_status=previous,
        to_status=request.status,
        tracking_id=tracking_id,
        changed_by=staff,
        changed_at=now,
    )
