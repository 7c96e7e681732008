"""The hold shelf in the System Manager's cycle: pickup reminders, shelf expiry, and the stale guard.

Every cycle, :func:`run_shelf` looks at the requests on the shelf (``Customer Notified via E-Mail/Phone/Mail``)
and, by each pickup location's policy (:mod:`desktop.services.admin.shelf_settings`, date rules in
:mod:`desktop.domain.shelf`):

* creates the reminder notices that are due, one per request, shelf stay and step: the dedupe key is
  ``reminder:<request>:<tracking id of the move to the shelf>:<step>``, so several System Managers running the
  same cycle insert each reminder once (``ON CONFLICT DO NOTHING``) and the outbox's claims send it once.
  E-mail patrons' reminders go through the outbox; Phone and Mail patrons' are ``phone``/``print`` notices that
  Contact Customers lists as calls and letters to make (the e-mail sender never claims them);
* records a reminder whose window passed while no System Manager ran (an outage) as ``cancelled`` with the
  reason ``skipped: …``: it is listed in the cycle's summary and on the notice, never sent late;
* moves a request whose hold ended without checkout to ``Awaiting Return to Lender`` (Tracking by "System")
  and, when the policy says so, queues the ``Pickup Expired`` e-mail (for Phone and Mail patrons a
  ``phone``/``print`` expiry notice: a call or a letter Contact Customers lists, like a reminder).

At sending time the dispatcher asks :func:`stale_reason` whether a reminder or expiry notice still applies.

When an e-mailed or texted reminder or expiry notice fails for good, :mod:`desktop.services.notices.fallback` makes
its successor on the patron's next channel under :func:`successor_key` (the shelf notice's own key plus
``:fb<failed notice id>``), so the stale guard, the cancelling of calls and letters that no longer apply and
Contact Customers treat the successor as the same reminder step (or expiry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, String, func, or_, select, type_coerce, update
from sqlalchemy.orm import Session, selectinload

from desktop.db.engine import Database
from desktop.db.models import Notification, Patron, PickupLocation, Request, Tracking
from desktop.domain.channels import Channel, NoticeEvent
from desktop.domain.clock import as_utc
from desktop.domain.methods import NotificationMethod, RequestType
from desktop.domain.shelf import ShelfError, StepKind, expires_at, local_moment, plan, reminder_window
from desktop.domain.statuses import NOTIFIED_STATUSES, Status
from desktop.services.admin.shelf_settings import ShelfSettings, local_date, read_shelf_settings
from desktop.services.notices import outbox
from desktop.services.notices.notice_context import primary_contact
from desktop.services.notices.templates import (
    ARTICLE_PICKUP_REMINDER,
    LOAN_PICKUP_REMINDER,
    PICKUP_EXPIRED,
    PRINT_PICKUP_EXPIRED,
    PRINT_PICKUP_REMINDER,
)
from desktop.services.requests.status import SYSTEM_USER, change_status

REMINDER_PREFIX = "reminder:"
EXPIRED_PREFIX = "expired:"
#: What a fallback successor's key adds to the failed shelf notice's: ``reminder:7:31:1:fb120`` (:func:`successor_key`).
SUCCESSOR_MARK = ":fb"
#: Channels of the reminders staff make by hand (Contact Customers); the e-mail sender claims only "email".
PHONE = "phone"
PRINT = "print"
CHUNK = 500
#: Ids per ``IN (…)`` list: well under SQLite's and PostgreSQL's limits on bound parameters.
IN_CHUNK = 10_000
#: A pickup location's hold days when it has none (or the request has no pickup location): the column's default.
DEFAULT_HOLD_DAYS = 10
EXPIRED_NOTE = "hold ended {end} without checkout; recorded by the System Manager"
_NOTIFIED = tuple(s.value for s in NOTIFIED_STATUSES)


def reminder_key(request_id: int, tracking_id: int, step: int) -> str:
    """One reminder per request, shelf stay (the Tracking row of the move to the shelf) and step."""
    return f"{REMINDER_PREFIX}{request_id}:{tracking_id}:{step}"


def expired_key(request_id: int, tracking_id: int) -> str:
    """One expiry notice per expiry (the Tracking row of the move to Awaiting Return to Lender)."""
    return f"{EXPIRED_PREFIX}{request_id}:{tracking_id}"


def successor_key(dedupe_key: str, failed_id: int) -> str:
    """The key of the notice that takes over from a failed reminder or expiry notice (fallback to the patron's
    next channel): the shelf notice's own key (without any earlier ``:fb`` part) and ``:fb<failed notice id>``,
    e.g. ``reminder:7:31:1:fb120``.

    Keeping the reminder's key keeps every rule that reads one unchanged: it is still a shelf notice
    (:func:`is_shelf_notice`, the outbox's tidy pass leaves it alone), the stale guard checks the same step, and
    Contact Customers lists a call or letter made this way as that step's.
    """
    return f"{base_key(dedupe_key)}{SUCCESSOR_MARK}{failed_id}"


def base_key(dedupe_key: str) -> str:
    """A shelf notice's key without the ``:fb<id>`` part a fallback successor's key ends with."""
    return dedupe_key.split(SUCCESSOR_MARK, 1)[0]


def is_successor_key(dedupe_key: str) -> bool:
    """Whether a shelf notice takes over from a failed one (its key ends with ``:fb<id>``, :func:`successor_key`)."""
    return is_shelf_notice(dedupe_key) and SUCCESSOR_MARK in dedupe_key


def reminder_step(dedupe_key: str) -> int:
    """The 0-based step of a reminder's key (a fallback successor's included)."""
    return int(base_key(dedupe_key)[len(REMINDER_PREFIX) :].split(":")[2])


def is_shelf_notice(dedupe_key: str) -> bool:
    """Whether a notice is the shelf's (a reminder or an expiry) rather than an arrival's."""
    return dedupe_key.startswith((REMINDER_PREFIX, EXPIRED_PREFIX))


def shelf_key_filter() -> ColumnElement[bool]:
    """SQL: the notice is a reminder or an expiry notice."""
    return or_(Notification.dedupe_key.like(REMINDER_PREFIX + "%"), Notification.dedupe_key.like(EXPIRED_PREFIX + "%"))


def reminder_template(request_type: str, channel: str, chosen: str) -> str:
    """The template of a reminder: the step's own, else the default for the channel and request type."""
    if channel == PRINT:
        return PRINT_PICKUP_REMINDER
    if channel == PHONE:
        return chosen or LOAN_PICKUP_REMINDER  # a call has no text; the name says which step it is
    if chosen:
        return chosen
    return ARTICLE_PICKUP_REMINDER if request_type == RequestType.ARTICLE.value else LOAN_PICKUP_REMINDER


def _channel(method: str) -> str:
    if method == NotificationMethod.PHONE.value:
        return PHONE
    if method == NotificationMethod.EMAIL.value:
        return outbox.EMAIL
    return PRINT


@dataclass
class ShelfRun:
    """What one pass over the shelf did."""

    reminders: int = 0  # reminder notices created (e-mail, calls and letters)
    expired: int = 0  # requests moved to Awaiting Return to Lender
    expired_notices: int = 0
    skipped: list[str] = field(default_factory=list)  # reminders whose window passed unsent, one line each

    def describe(self) -> str:
        """``reminders 3, expired 1, skipped 2``."""
        return f"reminders {self.reminders}, expired {self.expired}, skipped {len(self.skipped)}"


class ShelvedRow(NamedTuple):
    """A request on the shelf, as the scan reads it (plain data, one query for all).

    A named tuple rather than a frozen dataclass: a cycle makes thousands, and a tuple is built in one step.
    """

    request_id: int
    transaction_number: int
    status: str
    notified_at: datetime
    request_type: str
    pickup_id: int | None
    hold_days: int
    patron_id: int
    method: str
    tracking_id: int


def _utc(value: str | datetime) -> datetime:
    """A stored timestamp as aware UTC: SQLite hands back its text, PostgreSQL a datetime."""
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _pickup_id() -> Any:
    return func.coalesce(Request.pickup_location_id, Patron.pickup_location_id)


def _on_shelf_query(*columns: Any) -> Any:
    """The requests on the shelf with their patron and pickup location joined (pickup: the request's, else the
    patron's)."""
    return (
        select(*columns)
        .select_from(Request)
        .join(Patron, Patron.id == Request.patron_id)
        .outerjoin(PickupLocation, PickupLocation.id == _pickup_id())
        .where(Request.status.in_(_NOTIFIED))
    )


def _shelved_query() -> Any:
    """The shelved requests as plain rows (the columns of :class:`ShelvedRow` but the Tracking id, in order)."""
    return _on_shelf_query(
        Request.id,
        Request.transaction_number,
        Request.status,
        type_coerce(Request.status_changed_at, String),  # parsed only when needed: no type hook per row
        Request.request_type,
        _pickup_id(),
        func.coalesce(PickupLocation.hold_days, DEFAULT_HOLD_DAYS),
        Patron.id,
        Patron.notification_method,
    )


def latest_tracking(session: Session, request_ids: list[int] | None = None) -> dict[int, int]:
    """The newest Tracking id (the move to the shelf) of the shelved requests (of ``request_ids`` if given).

    A ``GROUP BY`` over the index ``tracking (request_id, id)`` rather than a correlated subquery per row: with
    no ids it reads only that index and ``requests (status, …)``, no table row, on SQLite and PostgreSQL alike.
    """
    query = select(Tracking.request_id, func.max(Tracking.id)).group_by(Tracking.request_id)
    if request_ids is None:
        parts = [query.join(Request, Request.id == Tracking.request_id).where(Request.status.in_(_NOTIFIED))]
    else:
        parts = [
            query.where(Tracking.request_id.in_(request_ids[start : start + IN_CHUNK]))
            for start in range(0, len(request_ids), IN_CHUNK)
        ]
    found: dict[int, int] = {}
    for part in parts:
        found.update(
            (int(request_id), int(tracking_id)) for request_id, tracking_id in session.connection().execute(part)
        )
    return found


def _row(values: Any, tracking: dict[int, int]) -> ShelvedRow:
    rid, tn, status, at, rtype, pid, days, patron, method = values
    return ShelvedRow(rid, tn, status, _utc(at), rtype, pid, int(days), patron, method, tracking.get(rid, 0))


def shelved_rows(session: Session) -> list[ShelvedRow]:
    """Every request on the shelf, with its pickup's hold days and its newest Tracking id, by request id."""
    raw = session.connection().execute(_shelved_query().order_by(Request.id)).all()
    tracking = latest_tracking(session)
    return [_row(values, tracking) for values in raw]


def _slot(value: str | datetime) -> Any:
    """A key for the UTC minute of a stored timestamp, cheap enough for every shelved request.

    Every time zone's offset is a whole number of minutes, so requests notified in the same UTC minute share
    their local day. SQLite hands back text (``YYYY-MM-DD HH:MM…``, UTC); PostgreSQL an aware datetime.
    """
    if isinstance(value, str):
        return value[:16]
    return (value.date(), value.hour, value.minute, value.utcoffset())


@dataclass(slots=True)
class _Decision:
    """What the scan decided for one request."""

    row: ShelvedRow
    create: list[tuple[int, str]]  # (step, "due" | "skipped: …")
    expire_end: str = ""  # the hold's end, when the hold is over


@dataclass(frozen=True, slots=True)
class _Plan:
    """One hold's schedule as seen now: shared by every request notified the same day at the same desk."""

    end: date
    over: bool  # the hold has ended: the request goes back to the lender
    steps: tuple[tuple[int, str], ...]  # (step, "due" | "skipped: …") for the steps whose window has started


def _plan_for(
    notified_on: date, hold_days: int, pickup_id: int | None, shelf: ShelfSettings, now: datetime
) -> _Plan | None:
    policy = shelf.policy(pickup_id)
    tz = shelf.tz
    try:
        end, planned = plan(notified_on, hold_days, policy, shelf.closed)
    except ShelfError:
        return None  # a calendar closed for a year: nothing can be planned (the Routing tab refuses to save one)
    if now >= expires_at(end, tz):
        return _Plan(end, True, ())
    steps: list[tuple[int, str]] = []
    for item in planned:
        if item.day is None:
            continue
        start, stop = reminder_window(item.day, policy, tz)
        if now < start:
            continue
        if now < stop:
            steps.append((item.step, "due"))
        else:
            step = policy.steps[item.step]
            steps.append(
                (
                    item.step,
                    f"skipped: the reminder of {item.day.isoformat()} ({step.describe()}) was not sent that day "
                    "(no System Manager ran); it is not sent late",
                )
            )
    return _Plan(end, False, tuple(steps))


def _decide(row: ShelvedRow, the_plan: _Plan | None, existing: set[str]) -> _Decision | None:
    if the_plan is None:
        return None
    if the_plan.over:
        return _Decision(row, [], the_plan.end.isoformat())
    create = [
        (step, verdict)
        for step, verdict in the_plan.steps
        if reminder_key(row.request_id, row.tracking_id, step) not in existing
    ]
    return _Decision(row, create) if create else None


def run_shelf(db: Database, *, now: datetime, chunk: int = CHUNK) -> ShelfRun:
    """Create due reminders, record missed ones, expire ended holds; safe to run on every workstation at once."""
    run = ShelfRun()
    _close_hand_reminders(db, now)
    shelf, decisions = decide_shelf(db, now=now)
    for start in range(0, len(decisions), chunk):
        part = decisions[start : start + chunk]
        with db.write() as session:
            for decision in part:
                if decision.expire_end:
                    _expire(session, decision, shelf, now, run)
                else:
                    _remind(session, decision, shelf, now, run)
    return run


def decide_shelf(db: Database, *, now: datetime) -> tuple[ShelfSettings, list[_Decision]]:
    """What the shelf needs now (reminders due or missed, holds over), read in one short read transaction.

    Five queries whatever the shelf's size: the settings, the hold lengths in use, one pass over the shelved
    requests notified long enough ago to need anything (:func:`_nothing_due_since`), the reminders they have, and
    the newest Tracking id (which names the shelf stay in a reminder's key) of only those with a reminder whose
    window has started. The date rules (closed days cannot be written in SQL) are worked out in
    Python once per notification day and desk; a request whose day and desk need nothing now is passed over as
    the raw row it came in.
    """
    with db.read() as session:
        shelf = read_shelf_settings(session)
        holds = {
            DEFAULT_HOLD_DAYS,
            *(int(h) for h in session.scalars(select(PickupLocation.hold_days).distinct()) if h is not None),
        }
        cutoff = _nothing_due_since(shelf, holds, now)
        raw = session.connection().execute(_shelved_query().where(Request.status_changed_at < cutoff)).all()
        existing = set(
            session.scalars(
                select(Notification.dedupe_key)
                .join(Request, Request.id == Notification.request_id)
                .where(Request.status.in_(_NOTIFIED), Notification.dedupe_key.like(REMINDER_PREFIX + "%"))
            )
        )
        tz = shelf.tz
        plans: dict[tuple[date, int, int | None], _Plan | None] = {}  # one plan per notification day and desk
        days: dict[Any, date] = {}  # local day per UTC minute of notification
        wanted: list[tuple[Any, _Plan]] = []
        for values in raw:
            at, pickup_id, hold_days = values[3], values[5], values[6]
            slot = _slot(at)
            day = days.get(slot)
            if day is None:
                day = days[slot] = local_date(_utc(at), tz)
            key = (day, hold_days, pickup_id)
            if key in plans:
                the_plan = plans[key]
            else:
                the_plan = plans[key] = _plan_for(day, int(hold_days), pickup_id, shelf, now)
            if the_plan is not None and (the_plan.over or the_plan.steps):
                wanted.append((values, the_plan))
        reminding = sorted(values[0] for values, the_plan in wanted if not the_plan.over)
        tracking = latest_tracking(session, reminding) if reminding else {}
    decisions: list[_Decision] = []
    for values, the_plan in wanted:
        decision = _decide(_row(values, tracking), the_plan, existing)
        if decision is not None:
            decisions.append(decision)
    decisions.sort(key=lambda decision: decision.row.request_id)
    return shelf, decisions


def _nothing_due_since(shelf: ShelfSettings, holds: set[int], now: datetime) -> datetime:
    """A moment such that no request notified at or after it has anything due now: the SQL side of the scan.

    The earliest any hold can need something is its first reminder or its expiry, counted in days from the
    notification day; closed days and weekdays only move those later, so the smallest such count over every
    policy and every hold length in use is a safe bound. The exact rules are then applied to each request read;
    the bound is an hour late, so a day whose midnight a DST change moves is never cut short.
    """
    earliest: list[int] = []
    for policy in (*shelf.policies.values(), shelf.policy(None)):
        for hold in holds:
            earliest.append(hold + 1)  # the hold is over at the start of the day after its end
            for step in policy.steps:
                days = step.days if step.kind is StepKind.AFTER_NOTIFIED else hold - step.days
                if days > 0:  # a step on or before the notification day is never sent
                    earliest.append(days)
    first_day = local_date(now, shelf.tz) - timedelta(days=min(earliest) - 1)
    return local_moment(first_day, 0, shelf.tz).astimezone(UTC) + timedelta(hours=1)


def _close_hand_reminders(db: Database, now: datetime) -> None:
    """Cancel calls and letters still to make that no longer apply: a reminder whose request left the shelf (or
    whose stay is over), an expiry call or letter whose request is no longer waiting to go back since that expiry.
    The e-mails have the same check at sending time; these have no sender."""
    latest = select(func.max(Tracking.id)).where(Tracking.request_id == Notification.request_id).scalar_subquery()
    on_shelf = select(Request.id).where(Request.status.in_(_NOTIFIED))
    going_back = select(Request.id).where(Request.status == Status.AWAITING_RETURN_TO_LENDER.value)
    hand = (Notification.state == outbox.PENDING, Notification.channel.in_((PHONE, PRINT)))
    with db.write() as session:
        session.execute(
            update(Notification)
            .where(*hand, Notification.dedupe_key.like(REMINDER_PREFIX + "%"),
                   or_(Notification.request_id.not_in(on_shelf), Notification.tracking_id != latest))
            .values(state=outbox.CANCELLED, updated_at=now,
                    last_reply="cancelled: the request left the hold shelf before the reminder was made")
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        session.execute(
            update(Notification)
            .where(*hand, Notification.dedupe_key.like(EXPIRED_PREFIX + "%"),
                   or_(Notification.request_id.not_in(going_back), Notification.tracking_id != latest))
            .values(state=outbox.CANCELLED, updated_at=now,
                    last_reply="cancelled: the request is no longer at Awaiting Return to Lender")
            .execution_options(synchronize_session=False)
        )  # fmt: skip


def _reminder_channel(session: Session, row: ShelvedRow) -> str:
    """The reminder's channel: the first of the patron's "Pickup reminder" preference (else their method)."""
    first = outbox.effective_channels(session, row.patron_id, row.method, NoticeEvent.PICKUP_REMINDER)[0]
    if first is Channel.SMS:
        return outbox.SMS
    return _channel(first.value)  # the channel names are the notification methods' (E-Mail, Phone, Mail)


def _remind(session: Session, decision: _Decision, shelf: ShelfSettings, now: datetime, run: ShelfRun) -> None:
    row = decision.row
    policy = shelf.policy(row.pickup_id)
    channel = _reminder_channel(session, row)
    email = ""
    if channel == outbox.EMAIL:
        patron = session.get(Patron, row.patron_id, options=[selectinload(Patron.contact_points)])
        point = primary_contact(patron, outbox.EMAIL) if patron is not None else None
        email = point.value if point is not None else ""
    elif channel == outbox.SMS:  # a text to the patron's mobile number (issue 18)
        email = outbox.patron_sms_number(session, row.patron_id) or ""
    for step, verdict in decision.create:
        template = reminder_template(row.request_type, channel, policy.steps[step].template)
        state, reason = outbox.PENDING, ""
        if verdict != "due":
            state, reason = outbox.CANCELLED, verdict
        elif channel == outbox.EMAIL and not email.strip():
            state, reason = outbox.FAILED, outbox.NO_EMAIL_REASON
        elif channel == outbox.SMS and not email.strip():
            state, reason = outbox.FAILED, outbox.NO_MOBILE_REASON
        new_id = outbox.insert_notice(
            session,
            dedupe_key=reminder_key(row.request_id, row.tracking_id, step),
            channel=channel,
            template_name=template,
            request_id=row.request_id,
            patron_id=row.patron_id,
            tracking_id=row.tracking_id,
            state=state,
            to_address=email,
            reason=reason,
            now=now,
        )
        if new_id is None:
            continue  # another System Manager made it first
        if verdict == "due":
            run.reminders += 1
        else:
            run.skipped.append(f"TN {row.transaction_number} reminder {step + 1}: {verdict}")


def _expire(session: Session, decision: _Decision, shelf: ShelfSettings, now: datetime, run: ShelfRun) -> None:
    row = decision.row
    query = (
        select(Request)
        .where(Request.id == row.request_id)
        .options(selectinload(Request.patron).selectinload(Patron.contact_points))
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Request)  # another System Manager expires it
    request = session.scalar(query)
    if request is None or request.status != row.status or as_utc(request.status_changed_at) != row.notified_at:
        return  # checked out, expired by another System Manager, or put back on the shelf meanwhile
    tracking = change_status(
        session,
        request,
        Status.AWAITING_RETURN_TO_LENDER,
        SYSTEM_USER,
        now=now,
        note=EXPIRED_NOTE.format(end=decision.expire_end),
    )
    run.expired += 1
    if not shelf.policy(row.pickup_id).expired_notice:
        return
    channel = _channel(row.method)
    email, state, reason = "", outbox.PENDING, ""
    if channel == outbox.EMAIL:
        point = primary_contact(request.patron, outbox.EMAIL)
        email = point.value if point is not None else ""
        if not email.strip():
            state, reason = outbox.FAILED, outbox.NO_EMAIL_REASON
    # Phone and Mail patrons: a call or a letter to make, listed in Contact Customers like a reminder.
    made = outbox.insert_notice(
        session,
        dedupe_key=expired_key(request.id, tracking.id),
        channel=channel,
        template_name=PRINT_PICKUP_EXPIRED if channel == PRINT else PICKUP_EXPIRED,
        request_id=request.id,
        patron_id=request.patron_id,
        tracking_id=tracking.id,
        state=state,
        to_address=email,
        reason=reason,
        now=now,
    )
    if made is not None:
        run.expired_notices += 1


# ------------------------------------------------------------------------------------------------ the stale guard


@dataclass(frozen=True, slots=True)
class StaleCheck:
    """What the stale guard needs about one shelf notice's request, all read with the claimed batch.

    The dispatcher already reads each claimed request (status, when it reached it, its pickup location and hold
    days), the newest Tracking id of each, and every shared setting once per batch; the guard decides from those
    alone, so checking a shelf notice costs no query of its own.
    """

    status: str
    latest_tracking: int | None
    notified_at: datetime
    hold_days: int | None
    pickup_id: int | None


def stale_reason(
    shelf: ShelfSettings, dedupe_key: str, tracking_id: int | None, request: StaleCheck, now: datetime
) -> str:
    """Why a shelf notice must not go out now ("" when it still applies), checked at the moment of sending.

    A reminder applies while its request is on the shelf in the same stay and its step's window is open; an
    expiry notice while the request waits at Awaiting Return to Lender since that expiry.
    """
    status = request.status
    if dedupe_key.startswith(EXPIRED_PREFIX):
        if status != Status.AWAITING_RETURN_TO_LENDER.value or request.latest_tracking != tracking_id:
            return f"cancelled: the request is no longer at Awaiting Return to Lender (now {status})"
        return ""
    if status not in _NOTIFIED:
        return f"cancelled: the request left the hold shelf (now {status})"
    if request.latest_tracking != tracking_id:
        return "cancelled: the request was put on the shelf again since; that stay has its own reminders"
    step = reminder_step(dedupe_key)  # a fallback successor's key names its reminder's step too
    policy = shelf.policy(request.pickup_id)
    hold_days = DEFAULT_HOLD_DAYS if request.hold_days is None else request.hold_days
    try:
        _end, planned = plan(local_date(_utc(request.notified_at), shelf.tz), hold_days, policy, shelf.closed)
    except ShelfError as exc:
        return f"cancelled: {exc}"
    day = planned[step].day if step < len(planned) else None
    if day is None:
        return "cancelled: the shelf policy no longer has this reminder"
    start, stop = reminder_window(day, policy, shelf.tz)
    if now >= stop:
        return (
            f"skipped: the reminder of {day.isoformat()} was not sent that day (its window ended "
            f"{stop.isoformat(timespec='minutes')}); it is not sent late"
        )
    if now < start:
        return "cancelled: the reminder is not due yet (the shelf policy changed)"
    return ""
