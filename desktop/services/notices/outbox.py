"""The notification outbox: one row per notice, claimed with a lease, recorded with its whole history.

The outbox is what makes "one correct e-mail per arrival" hold with several System Managers on one database:

* A notice is created in the same transaction as the status change that calls for it; its ``dedupe_key`` is
  unique, so a second creator (another workstation's scan, a retried import) inserts nothing.
* A sender first *claims* due notices (``lease_owner`` = a token unique to this claim, ``lease_until``). On
  PostgreSQL the claim skips rows another transaction has locked (``FOR UPDATE SKIP LOCKED``); on SQLite the
  claim runs in ``BEGIN IMMEDIATE``, which serialises it with every other writer (SQLAlchemy drops
  ``FOR UPDATE`` there, so the write lock is what protects us).
* Every result is recorded by an ``UPDATE … WHERE lease_owner = <token>``
  (:mod:`desktop.services.notices.result_writer`): a sender whose lease was taken over cannot mark the notice
  sent. See ``docs/DELIVERY.md`` for the resulting guarantee.

States (``Notification.state``): ``pending`` (due at ``next_attempt_at``), ``retrying`` (a temporary failure,
due again later), ``sent``, ``failed`` (permanent; staff must act), ``no_template`` (its template is deleted:
not sent), ``cancelled`` (the request left Awaiting Customer Contact before it was sent).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Result, Select, and_, bindparam, case, func, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from desktop.db.engine import Database
from desktop.db.models import (
    ContactPoint,
    Location,
    NoticeTemplate,
    Notification,
    NotificationAttempt,
    PatronChannelPreference,
    Request,
    Tracking,
)
from desktop.domain.channels import Channel, NoticeEvent, Preference, default_preference, parse_preference, sms_number
from desktop.domain.clock import utcnow
from desktop.domain.methods import RequestType
from desktop.domain.statuses import Status
from desktop.services.notices.notice_context import primary_contact
from desktop.services.notices.templates import ARTICLE_PICKUP, LOAN_PICKUP

PENDING = "pending"
RETRYING = "retrying"
SENT = "sent"
FAILED = "failed"
NO_TEMPLATE = "no_template"
CANCELLED = "cancelled"
#: Sent, then a bounce report said it never arrived (desktop/services/notices/bounces.py).
BOUNCED = "bounced"
ALL_STATES = (PENDING, RETRYING, SENT, FAILED, NO_TEMPLATE, CANCELLED, BOUNCED)
#: States a sender picks up (when due and not leased).
WAITING_STATES = (PENDING, RETRYING)
#: States staff may send again ("Retry failed" / "Send now" on Contact Customers).
RETRYABLE_STATES = (FAILED, RETRYING, NO_TEMPLATE)

EMAIL = "email"
#: A text message (issue 18): ``to_address`` holds the E.164 number, ``message_id`` the provider's message id.
SMS = "sms"
#: What replaces a password-reset link in the stored copy of a sent (or failed) notice.
REDACTED_LINK = "[reset link removed]"
#: A temporary failure is retried this many times (about seven hours with the backoff below), then failed.
MAX_ATTEMPTS = 12
BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)

#: Channels of the calls and letters staff make (a fallback's, a hold-shelf reminder's): no sender claims them.
HAND_CHANNELS = ("phone", "print")
#: Why :func:`tidy` closes a fallback's call or letter (desktop/services/notices/fallback.py) nobody made.
HAND_CANCELLED = "cancelled: the request left Awaiting Customer Contact before the call or letter was made"

#: How the reason of a notice held back by a bounced address starts (Contact Customers regroups those rows).
BOUNCED_PREFIX = "e-mail bounced"
NO_EMAIL_REASON = "no e-mail address on file for this patron: add one on the Contact Info tab, then Retry"
NO_MOBILE_REASON = "no mobile number on file for this patron: add one at the Cell location on the Contact Info tab"


def flag_text(bounced_at: datetime, reason: str) -> str:
    """``bounced on 2026-11-30: 550 5.1.1 user unknown``: an address's bounce flag as staff read it everywhere."""
    return f"bounced on {bounced_at:%Y-%m-%d}: {reason}" if reason else f"bounced on {bounced_at:%Y-%m-%d}"


def bounced_reason(address: str, bounced_at: datetime, reason: str) -> str:
    """Why an arrival notice is not e-mailed to an address flagged by a bounce (Contact Customers shows it)."""
    return (
        f"{BOUNCED_PREFIX}: {address} {flag_text(bounced_at, reason)}; phone or write to the patron, and clear "
        "the flag on the Contact Card once the address is fixed"
    )


#: A notice staff sent by hand from the request form (Send E-mail, Resend): ``staff:<request id>:<token>``. It is
#: sent whatever the request's status and moves nothing when sent (the form routed the request already).
STAFF_PREFIX = "staff:"

#: SQL: the notice is not one of the hold shelf's (reminder or expiry; their keys, desktop/services/notices/shelf.py)
#: nor one staff sent by hand: neither is an arrival's notice, and neither is over when the request moves on.
_NOT_SHELF = (
    Notification.dedupe_key.not_like("reminder:%"),
    Notification.dedupe_key.not_like("expired:%"),
    Notification.dedupe_key.not_like(STAFF_PREFIX + "%"),
)


def is_staff_notice(dedupe_key: str) -> bool:
    """Whether a notice was sent by hand from the request form (see :data:`STAFF_PREFIX`)."""
    return dedupe_key.startswith(STAFF_PREFIX)


def no_template_reason(template_name: str) -> str:
    """Why a notice is not sent when its template is deleted (shown on Contact Customers)."""
    return f"no template: not sent (the {template_name!r} template is deleted; restore it to send)"


def arrival_template(request_type: str) -> str:
    """The e-mail template of an arrival: Article Pickup for copies, Loan Pickup for everything else."""
    return ARTICLE_PICKUP if request_type == RequestType.ARTICLE.value else LOAN_PICKUP


def arrival_dedupe_key(request_id: int, template_name: str, tracking_id: int) -> str:
    """``arrival:<request id>:<template>:<tracking id>``: one notice per arrival, a new one per return."""
    return f"arrival:{request_id}:{template_name}:{tracking_id}"


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` temporary failures: 1, 2, 4 … minutes, at most an hour."""
    delay: timedelta = BACKOFF_FIRST * (2 ** max(attempts - 1, 0))
    return min(delay, BACKOFF_MAX)


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched (``Result`` is typed without it; the DML result always has it)."""
    return int(getattr(result, "rowcount", 0) or 0)


def _insert_ignoring_duplicate(session: Session, values: dict[str, Any]) -> int:
    """Insert a notice unless its dedupe_key exists; return the new or existing id.

    ``ON CONFLICT DO NOTHING`` rather than catching IntegrityError: on PostgreSQL an error would abort the
    caller's whole transaction (the status change with it).
    """
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert_fn(Notification)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Notification.dedupe_key])
        .returning(Notification.id)
    )
    new_id = session.execute(stmt).scalar()
    if new_id is not None:
        return int(new_id)
    existing = session.scalar(select(Notification.id).where(Notification.dedupe_key == values["dedupe_key"]))
    assert existing is not None
    return int(existing)


def _template_usable(session: Session, name: str) -> bool:
    deleted = session.scalar(select(NoticeTemplate.deleted).where(NoticeTemplate.name == name))
    return deleted is not None and not deleted


def effective_channels(session: Session, patron_id: int, method: str, event: NoticeEvent) -> Preference:
    """The patron's channels for ``event`` in order: their stored preference, else their notification method.

    The same rule as :func:`desktop.services.patrons.channel_preferences.load_preferences`, read inside the
    caller's transaction (the notice is created in the status change's). A stored row that no longer parses is
    ignored for the default, so a notice still has a way to go.
    """
    stored = session.scalar(
        select(PatronChannelPreference.channels).where(
            PatronChannelPreference.patron_id == patron_id, PatronChannelPreference.event == event.value
        )
    )
    if stored:
        try:
            channels = parse_preference(stored)
        except ValueError:
            channels = ()
        if channels:
            return channels
    try:
        return default_preference(method, event)
    except ValueError:  # a method no longer known: treat it as the desk's work (no automatic notice)
        return (Channel.PHONE,)


def patron_sms_number(session: Session, patron_id: int) -> str | None:
    """The E.164 number the patron's texts go to (:func:`desktop.domain.channels.sms_number`), or None."""
    phones = session.execute(
        select(ContactPoint.normalized, func.coalesce(Location.name, ""), ContactPoint.is_primary)
        .outerjoin(Location, Location.id == ContactPoint.location_id)
        .where(ContactPoint.patron_id == patron_id, ContactPoint.kind == "phone")
        .order_by(ContactPoint.position, ContactPoint.id)
    ).all()
    return sms_number((str(number or ""), str(location), bool(primary)) for number, location, primary in phones)


def create_arrival_notice(
    session: Session, request: Request, tracking: Tracking, *, now: datetime | None = None
) -> int | None:
    """Create the notice for an arrival at Awaiting Customer Contact, in the caller's transaction.

    The first channel of the patron's "Item ready for pickup" preference decides (without one, their notification
    method): E-Mail gives an e-mail notice, SMS a text to the number :func:`patron_sms_number` finds. Returns
    the notice id, or ``None`` when the patron is contacted by hand (Phone and Mail patrons wait on Contact
    Customers). A deleted template gives a ``no_template`` notice and a patron without an e-mail address (or
    mobile number) a ``failed`` one, so the form can say why nothing was sent.
    """
    patron = request.patron
    channels = effective_channels(session, patron.id, patron.notification_method, NoticeEvent.READY_FOR_PICKUP)
    if channels[0] not in (Channel.EMAIL, Channel.SMS):
        return None
    now = now or utcnow()
    template_name = arrival_template(request.request_type)
    state, reason = PENDING, ""
    if channels[0] is Channel.SMS:
        channel, to_address = SMS, patron_sms_number(session, patron.id) or ""
        if not _template_usable(session, template_name):
            state, reason = NO_TEMPLATE, no_template_reason(template_name)
        elif not to_address:
            state, reason = FAILED, NO_MOBILE_REASON
    else:
        email = primary_contact(patron, EMAIL)
        channel, to_address = EMAIL, email.value if email else ""
        if not _template_usable(session, template_name):
            state, reason = NO_TEMPLATE, no_template_reason(template_name)
        elif email is None or not email.value.strip():
            state, reason = FAILED, NO_EMAIL_REASON
        elif email.bounced_at is not None:  # mail to it bounced: the desk phones or writes instead (issue 19)
            state, reason = FAILED, bounced_reason(email.value, email.bounced_at, email.bounce_reason)
    return _insert_ignoring_duplicate(
        session,
        {
            "dedupe_key": arrival_dedupe_key(request.id, template_name, tracking.id),
            "channel": channel,
            "template_name": template_name,
            "request_id": request.id,
            "patron_id": request.patron_id,
            "tracking_id": tracking.id,
            "state": state,
            "to_address": to_address,
            "last_reply": reason,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
            "attempts": 0,
        },
    )


def insert_notice(
    session: Session,
    *,
    dedupe_key: str,
    channel: str,
    template_name: str,
    request_id: int,
    patron_id: int,
    tracking_id: int,
    state: str,
    to_address: str,
    reason: str,
    now: datetime,
) -> int | None:
    """Insert a request's notice (a hold-shelf reminder or expiry) unless its dedupe key exists.

    Returns the new id, or ``None`` when another System Manager inserted the same key first.
    """
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert_fn(Notification)
        .values(dedupe_key=dedupe_key, channel=channel, template_name=template_name, request_id=request_id,
                patron_id=patron_id, tracking_id=tracking_id, state=state, to_address=to_address,
                last_reply=reason, next_attempt_at=now, created_at=now, updated_at=now, attempts=0)
        .on_conflict_do_nothing(index_elements=[Notification.dedupe_key])
        .returning(Notification.id)
    )  # fmt: skip
    new_id = session.execute(stmt).scalar()
    return None if new_id is None else int(new_id)


def queue_patron_notice(
    session: Session,
    *,
    patron_id: int,
    template_name: str,
    to_address: str,
    dedupe_key: str,
    secret: str | None = None,
) -> int:
    """Queue an e-mail about a patron alone (Password Reset) in the caller's transaction; return its id.

    Args:
        to_address: where it goes (not necessarily the primary e-mail: the address staff chose).
        secret: JSON text needed only until sending (``{"link", "expires_at", "hours"}`` for a reset); the
            dispatcher clears it and keeps a copy of the body with the link redacted.
    """
    if secret is not None:
        json.loads(secret)  # refuse unparseable data now, not at 3 a.m. in the System Manager
    now = utcnow()
    return _insert_ignoring_duplicate(
        session,
        {
            "dedupe_key": dedupe_key,
            "channel": EMAIL,
            "template_name": template_name,
            "request_id": None,
            "patron_id": patron_id,
            "tracking_id": None,
            "state": PENDING,
            "to_address": to_address,
            "secret": secret,
            "last_reply": "",
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
            "attempts": 0,
        },
    )


def retry_notices(db: Database, request_ids: list[int], by: str, *, now: datetime | None = None) -> int:
    """Send the failed, retrying or template-less arrival notices of these requests again, now.

    Only notices of requests still at Awaiting Customer Contact are touched (an old arrival's notice must not
    go out). Each gets a history line naming ``by``. Returns how many notices were put back to pending.
    """
    if not request_ids:
        return 0
    now = now or utcnow()
    with db.write() as session:
        ids = list(
            session.scalars(
                select(Notification.id)
                .join(Request, Request.id == Notification.request_id)
                .where(
                    Notification.request_id.in_(request_ids),
                    Notification.state.in_(RETRYABLE_STATES),
                    Request.status == Status.AWAITING_CUSTOMER_CONTACT.value,
                )
            )
        )
        if not ids:
            return 0
        session.execute(
            update(Notification)
            .where(Notification.id.in_(ids))
            .values(state=PENDING, next_attempt_at=now, attempts=0, lease_owner=None, lease_until=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        for notice_id in ids:
            session.add(
                NotificationAttempt(
                    notification_id=notice_id,
                    attempted_at=now,
                    worker=by,
                    outcome="retry",
                    reply=f"sent again on request of {by}",
                )
            )
        return len(ids)


# --------------------------------------------------------------------------------------------- maintenance


@dataclass(frozen=True)
class Upkeep:
    """What :func:`tidy` changed."""

    revived: int
    cancelled: int


def _latest_tracking_id() -> Any:
    return (
        select(func.max(Tracking.id))
        .where(Tracking.request_id == Notification.request_id)
        .correlate(Notification)
        .scalar_subquery()
    )


def tidy(db: Database, *, now: datetime) -> Upkeep:
    """Cancel waiting notices whose arrival is over, revive ``no_template`` ones whose template is back, and let
    riders of a leader that is no longer waiting (cancelled, sent or failed without them) lead again.

    A notice is over when its request left Awaiting Customer Contact (staff phoned, the patron collected it)
    or returned to it later (a newer arrival has its own notice). Notices under a live lease are left to
    their sender, which checks the same before sending.
    """
    with db.write() as session:
        not_leased = or_(Notification.lease_until.is_(None), Notification.lease_until < now)
        stale = (
            select(Notification.id)
            .join(Request, Request.id == Notification.request_id)
            .where(
                Notification.state.in_((*WAITING_STATES, NO_TEMPLATE)),
                not_leased,
                *_NOT_SHELF,  # the hold shelf's notices are checked when sent (desktop/services/notices/shelf.py)
                or_(
                    Request.status != Status.AWAITING_CUSTOMER_CONTACT.value,
                    Notification.tracking_id != _latest_tracking_id(),
                ),
            )
        )
        cancelled = _rowcount(
            session.execute(
                update(Notification)
                .where(Notification.id.in_(stale))
                .values(
                    state=CANCELLED,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                    last_reply=case(
                        (Notification.channel.in_(HAND_CHANNELS), HAND_CANCELLED),  # a fallback's call or letter
                        (
                            Notification.channel == "sms",
                            "cancelled: the request left Awaiting Customer Contact before the text was sent",
                        ),
                        else_="cancelled: the request left Awaiting Customer Contact before the e-mail was sent",
                    ),
                )
                .execution_options(synchronize_session=False)
            )
        )
        usable = {
            name
            for name, deleted in session.execute(select(NoticeTemplate.name, NoticeTemplate.deleted))
            if not deleted
        }
        revive = (
            select(Notification.id)
            .outerjoin(Request, Request.id == Notification.request_id)
            .where(
                Notification.state == NO_TEMPLATE,
                Notification.template_name.in_(usable),
                or_(
                    Notification.request_id.is_(None),
                    and_(
                        Request.status == Status.AWAITING_CUSTOMER_CONTACT.value,
                        Notification.tracking_id == _latest_tracking_id(),
                    ),
                ),
            )
        )
        # A rider whose leader was cancelled, sent or failed without it would wait for nothing: it leads again.
        leader = aliased(Notification)
        stranded = (
            select(Notification.id)
            .join(leader, leader.id == Notification.digest_leader_id, isouter=True)
            .where(
                Notification.digest_leader_id.is_not(None),
                Notification.state.in_(WAITING_STATES),
                not_leased,
                or_(leader.id.is_(None), leader.state.not_in(WAITING_STATES)),
            )
        )
        session.execute(
            update(Notification)
            .where(Notification.id.in_(stranded))
            .values(digest_leader_id=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        revived = _rowcount(
            session.execute(
                update(Notification)
                .where(Notification.id.in_(revive))
                .values(state=PENDING, next_attempt_at=now, updated_at=now, last_reply="template restored: sending")
                .execution_options(synchronize_session=False)
            )
        )
        return Upkeep(revived=revived, cancelled=cancelled)


# ------------------------------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    """Notices this sender may send until ``lease_until`` (and records with ``token``)."""

    token: str
    ids: tuple[int, ...]
    lease_until: datetime
    #: The notices among ``ids`` that ride in a claimed leader's message (a digest), leased with it.
    riders: tuple[int, ...] = ()


def _due_statement(channel: str, now: datetime, limit: int) -> Select[int]:
    """The ids of the ``limit`` oldest notices of ``channel`` a claim may take at ``now``.

    It reads ``ix_notifications_claimable`` (migration 0021) in order and stops after ``limit`` rows; without it
    PostgreSQL read and sorted every due notice on each claim. A plan test compiles it (tests/test_outbox.py).
    """
    # The states are written into the SQL, not sent as parameters: SQLite uses a partial index only when the
    # query's own text shows that the index's condition holds, and a parameter shows nothing (nor could it in
    # PostgreSQL's generic plan of a prepared claim).
    waiting: BindParameter[list[str]] = bindparam(
        "waiting_states", list(WAITING_STATES), expanding=True, literal_execute=True
    )
    return (
        select(Notification.id)
        .where(
            Notification.state.in_(waiting),
            Notification.channel == channel,
            Notification.next_attempt_at <= now,
            Notification.digest_leader_id.is_(None),
            or_(Notification.lease_until.is_(None), Notification.lease_until < now),
        )
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(limit)
    )


def _riders_statement(leaders: Sequence[int], now: datetime) -> Select[int]:
    """The ids of the waiting riders of ``leaders`` that no live claim holds: leased with their leaders.

    They are looked up by their leader in ``ix_notifications_digest_leader``, which holds only riders. The state
    is tested as ``state || ''``, the same test but one no index serves: given ``ix_notifications_due``, SQLite
    walked it over every waiting notice on each claim (7.8 ms at 20,000 waiting, 0.2 ms by the leader), and so did
    PostgreSQL without statistics once the queue was long (4.3 ms against 0.06 ms). A plan test compiles it
    (tests/test_outbox.py).
    """
    state = Notification.state.op("||")(literal_column("''"))
    return select(Notification.id).where(
        Notification.digest_leader_id.in_(leaders),
        state.in_(WAITING_STATES),
        or_(Notification.lease_until.is_(None), Notification.lease_until < now),
    )


def claim_due(
    db: Database, worker: str, *, limit: int, lease_seconds: float, now: datetime, channel: str = EMAIL
) -> Claim:
    """Lease up to ``limit`` due notices of ``channel`` to ``worker``, oldest first, in one short transaction.

    The token is unique per claim, so even the same worker claiming again later is a different owner. A notice
    riding in another's message (``digest_leader_id``, :mod:`desktop.services.notices.digest`) is never claimed
    on its own: in the same transaction, the waiting riders of each claimed leader are leased with the same token
    (whether due or not: they go when their leader goes) and are part of ``ids``.
    """
    token = f"{worker}#{uuid.uuid4().hex[:12]}"
    until = now + timedelta(seconds=lease_seconds)
    with db.write() as session:
        due = _due_statement(channel, now, limit)
        postgresql = session.get_bind().dialect.name == "postgresql"

        def lease(which: Any) -> list[int]:
            """Lease the notices ``which`` selects to this claim (skipping rows another claim has locked)."""
            if postgresql:
                which = which.with_for_update(skip_locked=True)
            return list(
                session.scalars(
                    update(Notification)
                    .where(Notification.id.in_(which))
                    .values(lease_owner=token, lease_until=until)
                    .returning(Notification.id)
                    .execution_options(synchronize_session=False)
                ).all()
            )

        ids = lease(due)
        riders: list[int] = []
        if ids:
            riders = lease(_riders_statement(ids, now))
    return Claim(token=token, ids=tuple(sorted([*ids, *riders])), lease_until=until, riders=tuple(sorted(riders)))


def renew(db: Database, token: str, until: datetime) -> int:
    """Extend a claim's lease to ``until`` (a live sender's heartbeat); how many notices it still holds."""
    with db.write() as session:
        result = session.execute(
            update(Notification)
            .where(Notification.lease_owner == token, Notification.state.in_(WAITING_STATES))
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)


def release(db: Database, token: str, ids: Iterable[int], reason: str) -> int:
    """Give claimed notices back unsent (the server is down, the lease is nearly over); they stay due."""
    wanted = list(ids)
    if not wanted:
        return 0
    with db.write() as session:
        result = session.execute(
            update(Notification)
            .where(Notification.id.in_(wanted), Notification.lease_owner == token)
            .values(lease_owner=None, lease_until=None, last_reply=reason)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)


#: SQL: a notice the sender still has to send (pending or retrying, due or not). Only the automatic channels: a
#: hold-shelf call or letter (``phone``/``print``) waits for staff in Contact Customers, and counting it would keep
#: the run loop waking at once for a notice no System Manager claims.
def _to_send(channels: Sequence[str]) -> tuple[Any, ...]:
    return (Notification.state.in_(WAITING_STATES), Notification.channel.in_(list(channels)))


def count_waiting(db: Database, *, channels: Sequence[str] = (EMAIL,)) -> int:
    """Notices of ``channels`` still to be sent (pending or retrying), due or not.

    Texts are counted only when the caller says they can be sent (an SMS transport is chosen): with texts off,
    a waiting text would keep the run loop waking for a notice nobody claims.
    """
    with db.read() as session:
        return int(session.scalar(select(func.count()).where(*_to_send(channels))) or 0)


def next_due_at(db: Database, *, channels: Sequence[str] = (EMAIL,)) -> datetime | None:
    """When the earliest waiting notice of ``channels`` becomes claimable (its retry time, or the end of a dead
    sender's lease).

    The run loop sleeps no longer than this, so a retry after one minute is not held back by a five-minute
    poll interval.
    """
    with db.read() as session:
        free = session.scalar(
            # A rider goes when its leader goes: its own time would wake the run loop for nothing.
            select(func.min(Notification.next_attempt_at)).where(
                *_to_send(channels), Notification.lease_until.is_(None), Notification.digest_leader_id.is_(None)
            )
        )
        leased = session.scalar(
            select(func.min(Notification.lease_until)).where(*_to_send(channels), Notification.lease_until.is_not(None))
        )
    times = [t for t in (free, leased) if t is not None]
    return min(times) if times else None


# ------------------------------------------------------------------------------------------ views for staff


@dataclass(frozen=True)
class NoticeInfo:
    """A notice as plain data (Contact Customers' "why was nothing sent", the indicator's tooltip)."""

    id: int
    request_id: int | None
    patron_id: int | None
    template_name: str
    state: str
    to_address: str
    attempts: int
    last_reply: str
    next_attempt_at: datetime
    sent_at: datetime | None
    message_id: str
    subject: str

    @property
    def explanation(self) -> str:
        """One line for staff: what happened and why."""
        if self.state == SENT:
            return f"sent to {self.to_address}"
        if self.state == NO_TEMPLATE:
            return "no template: not sent"
        if self.state == PENDING:
            return "waiting to be sent" + (f" ({self.last_reply})" if self.last_reply else "")
        if self.state == RETRYING:
            return f"will retry (attempt {self.attempts}): {self.last_reply}"
        return f"{self.state}: {self.last_reply}"


def _info(n: Notification) -> NoticeInfo:
    return NoticeInfo(
        n.id,
        n.request_id,
        n.patron_id,
        n.template_name,
        n.state,
        n.to_address,
        n.attempts,
        n.last_reply,
        n.next_attempt_at,
        n.sent_at,
        n.message_id,
        n.subject,
    )


def arrival_notices(db: Database, request_ids: Sequence[int]) -> dict[int, NoticeInfo]:
    """The newest e-mail notice of each request (requests without one are absent)."""
    if not request_ids:
        return {}
    with db.read() as session:
        rows = session.scalars(
            select(Notification)
            .where(Notification.request_id.in_(list(request_ids)), *_NOT_SHELF)
            .order_by(Notification.request_id, Notification.id)
        )
        found: dict[int, NoticeInfo] = {}
        for notice in rows:
            assert notice.request_id is not None
            found[notice.request_id] = _info(notice)
        return found


@dataclass(frozen=True)
class AttemptInfo:
    """One line of a notice's history."""

    attempted_at: datetime
    worker: str
    outcome: str
    reply: str


def notice_history(db: Database, notice_id: int) -> list[AttemptInfo]:
    """Every attempt of a notice, oldest first."""
    with db.read() as session:
        rows = session.scalars(
            select(NotificationAttempt)
            .where(NotificationAttempt.notification_id == notice_id)
            .order_by(NotificationAttempt.id)
        )
        return [AttemptInfo(a.attempted_at, a.worker, a.outcome, a.reply) for a in rows]
