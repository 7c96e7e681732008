"""One System Manager cycle: route, find arrivals, claim due notices, render, send over one SMTP connection,
record — the same code for the GUI poller and ``callslip-manager run``.

No network I/O happens inside a database transaction: a claim, the rendering (a read) and each result are
separate short transactions, and the SMTP conversation happens between them. Each sent notice is recorded in
its own transaction right after the server's 250, so a crash can leave at most the one message in flight
unrecorded (docs/DELIVERY.md).

A patron's arrivals close together go out as one message (:mod:`desktop.services.notices.digest`): the cycle
gathers them before claiming, a claimed leader brings its riders, the message lists every item, and its result is
recorded for all of them in one transaction (each request with its own Tracking line).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property, partial
from typing import Any

import psycopg
from markupsafe import escape
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import SQLAlchemyError

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import NoticeTemplate, Notification, NotificationAttempt, Tracking
from desktop.domain.channels import Channel, NoticeEvent
from desktop.domain.clock import utcnow
from desktop.domain.methods import NotificationMethod
from desktop.domain.statuses import Status
from desktop.services.admin.shelf_settings import ShelfSettings, shelf_settings_from
from desktop.services.admin.sms_settings import SmsSettings, load_sms_settings
from desktop.services.notices import fallback, outbox, shelf, sms_dispatch, smtp_backoff
from desktop.services.notices.bounces import verp_address, verp_token
from desktop.services.notices.delivery_health import record_cycle
from desktop.services.notices.delivery_problems import DeliveryProblem
from desktop.services.notices.digest import digest_context, digest_note, gather, group_riders, template_lists_items
from desktop.services.notices.mailer import (
    Outcome,
    OutgoingMessage,
    SendResult,
    SmtpConnectionError,
    SmtpTransport,
    build_message,
    message_id_for,
)
from desktop.services.notices.notice_context import (
    RequestRow,
    load_request_rows,
    patron_notice_context,
    primary_contact,
    request_row_context,
    system_settings,
)
from desktop.services.notices.result_writer import Advance, GroupMember, ResultWriter
from desktop.services.notices.routing import route_due_requests, scan_arrivals
from desktop.services.notices.sender_identity import no_from_address, resolve_from
from desktop.services.notices.sms_transports import SmsError, SmsPermanentError, SmsTemporaryError
from desktop.services.notices.templates import (
    MAX_SUBJECT,
    PASSWORD_RESET,
    RenderedNotice,
    TemplateError,
    TemplateFields,
    render,
)
from desktop.services.patrons.password_reset import EXPIRED_BEFORE_SENDING, reset_link_expired
from desktop.services.requests.status import SYSTEM_USER

log = logging.getLogger(__name__)

BATCH_SIZE = 100
#: A claim's lease, at least; by default it is ``LEASE_TIMEOUTS`` × the SMTP timeout if that is longer (90 s with
#: the default 30 s timeout). While a sender works, a heartbeat renews it every third of its length, so it can be
#: short: a crashed sender's notices wait at most one lease. A sender starts a message only while its lease has at
#: least half its length left and sends the final dot only while the lease outlasts the wait for the server's
#: verdict (one timeout), so a send never outlives the lease even when the heartbeat cannot reach the database.
MIN_LEASE_SECONDS = 60.0
LEASE_TIMEOUTS = 3
#: A heartbeat runs every lease / HEARTBEATS_PER_LEASE.
HEARTBEATS_PER_LEASE = 3


def default_lease_seconds(settings: Settings) -> float:
    """The lease a claim gets (and gets again at each heartbeat): how long a crashed sender's notices wait."""
    return max(MIN_LEASE_SECONDS, settings.smtp_timeout * LEASE_TIMEOUTS)


def default_worker() -> str:
    """This process's name in leases and history: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class CycleSummary:
    """What one cycle did, as plain data for the status bar, the log and ``run --once``.

    Attributes:
        sent, failed, retrying, no_template, cancelled: notices that reached that state in this cycle.
        pending: notices still waiting (pending or retrying) in the database after the cycle.
        routed: requests moved from In Transit to Awaiting Customer Contact.
        created: arrival notices the scan created (arrivals made without this program).
        errors: problems that stopped part of the cycle (SMTP server down, routing failed), one line each.
        problem: which delivery problem kept notices from being sent (``None``: none did); the desk's banner
            names it with the action that fixes it.
        backoff_until: the server asked us to wait (or was unreachable); no connection is tried before then.
    """

    started_at: datetime
    seconds: float
    worker: str
    routed: int = 0
    created: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    no_template: int = 0
    cancelled: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)
    next_due_at: datetime | None = None
    problem: DeliveryProblem | None = None
    backoff_until: datetime | None = None
    reminders: int = 0  # hold-shelf reminders created (desktop/services/notices/shelf.py)
    expired: int = 0  # requests whose hold ended, moved to Awaiting Return to Lender
    skipped: list[str] = field(default_factory=list)  # reminders whose window passed unsent, one line each
    texts_resume_at: datetime | None = None  # quiet hours: no text is claimed before then
    fallbacks: int = 0  # notices moved on to the patron's next channel (desktop/services/notices/fallback.py)

    @property
    def ok(self) -> bool:
        """No problem stopped any part of the cycle."""
        return not self.errors

    def describe(self) -> str:
        """One line: ``routed 2, sent 5, failed 1, retrying 0, pending 3 (0.41 s)`` plus any problems."""
        parts = [
            f"routed {self.routed}",
            f"sent {self.sent}",
            f"failed {self.failed}",
            f"retrying {self.retrying}",
            f"pending {self.pending}",
        ]
        if self.no_template:
            parts.append(f"no template {self.no_template}")
        if self.cancelled:
            parts.append(f"cancelled {self.cancelled}")
        if self.reminders or self.expired or self.skipped:
            parts.append(f"reminders {self.reminders}, expired {self.expired}, skipped {len(self.skipped)}")
        if self.texts_resume_at is not None:
            parts.append(f"texts wait for quiet hours until {self.texts_resume_at.astimezone():%H:%M}")
        if self.fallbacks:
            parts.append(f"fallbacks {self.fallbacks}")
        line = ", ".join(parts) + f" ({self.seconds:.2f} s)"
        if self.errors:
            line += " — " + "; ".join(self.errors)
        if self.skipped:  # hold-shelf reminders missed during an outage: listed, never sent late
            more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            line += " — skipped reminders: " + "; ".join(self.skipped[:5]) + more
        return line


@dataclass
class _Tally:
    """The counters of a cycle while it runs; its fields are CycleSummary's, which is built from them."""

    routed: int = 0
    created: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    no_template: int = 0
    cancelled: int = 0
    errors: list[str] = field(default_factory=list)
    problem: DeliveryProblem | None = None
    backoff_until: datetime | None = None
    reminders: int = 0
    expired: int = 0
    skipped: list[str] = field(default_factory=list)
    texts_resume_at: datetime | None = None
    fallbacks: int = 0

    def count(self, state: str) -> None:
        name = {
            outbox.SENT: "sent",
            outbox.FAILED: "failed",
            outbox.RETRYING: "retrying",
            outbox.NO_TEMPLATE: "no_template",
            outbox.CANCELLED: "cancelled",
        }.get(state)
        if name:
            setattr(self, name, getattr(self, name) + 1)


class _Clock:
    """The cycle's "now": the given time (tests), else the database server's clock on PostgreSQL (so leases
    compare equal times on every workstation), else this computer's; advanced by elapsed monotonic time."""

    def __init__(self, db: Database, now: datetime | None) -> None:
        if now is None:
            if db.backend == "postgresql":
                with db.read() as session:
                    now = session.scalar(select(func.now()))
            now = now or utcnow()
        self._base = now
        self._start = time.monotonic()

    def __call__(self) -> datetime:
        return self._base + timedelta(seconds=time.monotonic() - self._start)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no details'}"


# ------------------------------------------------------------------------------------------------ prepare


@dataclass(frozen=True)
class _Job:
    """A claimed notice with everything needed to render it, read from the database as plain data."""

    notice_id: int
    request_id: int | None
    attempts: int
    claim: outbox.Claim
    fields: TemplateFields
    #: Builds the template's context (pure CPU, no database): called once, through :attr:`context`, so an
    #: e-mail's is built while the SMTP server checks the previous message's recipient, not in the batch's read.
    make_context: Callable[[], dict[str, Any]]
    to_override: tuple[str, ...] | None
    link: str  # a password-reset link, which the stored copy must not keep
    message_id: str  # kept from an earlier attempt, else made from the rendered From
    dedupe_key: str
    installation_id: str = ""  # this database's random id (system_settings), part of every Message-ID
    arrival: bool = True  # an arrival's notice moves its request to Notified via E-Mail when sent
    #: Notices riding in this one's message (a digest, desktop/services/notices/digest.py), oldest first.
    riders: tuple[_Job, ...] = ()
    #: A rider sent as a message of its own (its leader was not sent, or cannot list several items): its
    #: ``digest_leader_id`` is cleared when its result is recorded.
    alone: bool = False

    @cached_property
    def context(self) -> dict[str, Any]:
        """The template's context (built on first use)."""
        return self.make_context()


@dataclass(frozen=True)
class _Rider:
    """A notice carried in another's message: what recording its result needs."""

    notice_id: int
    request_id: int | None
    attempts: int


@dataclass(frozen=True)
class _Ready:
    notice_id: int
    request_id: int | None
    attempts: int
    claim: outbox.Claim
    outgoing: OutgoingMessage
    stored: dict[str, Any]  # the copy kept in the notice once done (reset links redacted)
    arrival: bool = True
    riders: tuple[_Rider, ...] = ()
    alone: bool = False

    @property
    def notice_ids(self) -> tuple[int, ...]:
        """The notices this message carries: its own, then its riders'."""
        return (self.notice_id, *(r.notice_id for r in self.riders))


@dataclass(frozen=True)
class _Done:
    notice_id: int
    state: str
    reason: str
    values: dict[str, Any] = field(default_factory=dict)


def _fields(template: NoticeTemplate, channel: str) -> TemplateFields:
    """The template's parts for a claim of ``channel``: an e-mail never sends the SMS part, so it is not rendered
    (one part in four of each e-mail's render)."""
    return TemplateFields(
        name=template.name,
        channel=template.channel,
        description=template.description,
        from_name=template.from_name,
        from_address=template.from_address,
        to_address=template.to_address,
        cc=template.cc,
        bcc=template.bcc,
        subject=template.subject,
        body_text=template.body_text,
        body_html=template.body_html,
        body_sms=template.body_sms if channel != outbox.EMAIL else "",
    )


def _redact(text: str, secret_text: str) -> str:
    # The HTML part carries the link HTML-escaped (``&`` as ``&amp;``): that copy must go too.
    for form in dict.fromkeys((secret_text, str(escape(secret_text)))) if secret_text else ():
        text = text.replace(form, outbox.REDACTED_LINK)
    return text


def _stored_copy(rendered: RenderedNotice, to: tuple[str, ...], message_id: str, link: str) -> dict[str, Any]:
    return {
        "from_address": rendered.from_address,
        "to_address": ", ".join(to)[:500],
        "cc": ", ".join(rendered.cc)[:500],
        "bcc": ", ".join(rendered.bcc)[:500],
        "subject": _redact(rendered.subject, link)[:MAX_SUBJECT],  # rendering refuses longer: stored = sent
        "body_text": _redact(rendered.body_text, link),
        "body_html": _redact(rendered.body_html, link),
        "message_id": message_id,
    }


@dataclass(frozen=True)
class _Batch:
    """What every notice of a claimed batch shares, read once: templates, shared settings, newest Tracking ids."""

    claim: outbox.Claim
    templates: dict[str, TemplateFields]
    shared: dict[str, Any]
    latest_tracking: dict[int, int]
    requests: dict[int, RequestRow]
    shelf: ShelfSettings  # the hold shelf's policies, from the shared settings (the stale guard needs them)
    now: datetime | None = None  # the cycle's time, for the hold shelf's "still due" check


_NOTICE_COLUMNS = (
    Notification.id,
    Notification.request_id,
    Notification.patron_id,
    Notification.tracking_id,
    Notification.template_name,
    Notification.attempts,
    Notification.message_id,
    Notification.dedupe_key,
    Notification.secret,
    Notification.to_address,
    Notification.digest_leader_id,
    Notification.channel,
)


#: A batch's queries, built once (the ids as expanding parameters): building them cost more than running them.
_CLAIMED_NOTICES = (
    select(*_NOTICE_COLUMNS)
    .where(Notification.id.in_(bindparam("ids", expanding=True)), Notification.lease_owner == bindparam("token"))
    .order_by(Notification.id)
)
_LATEST_TRACKING = (
    select(Tracking.request_id, func.max(Tracking.id))
    .where(Tracking.request_id.in_(bindparam("request_ids", expanding=True)))
    .group_by(Tracking.request_id)
)


def _event_of(dedupe_key: str) -> NoticeEvent:
    """The preference a request's notice follows: a hold-shelf reminder the reminder's, the rest the arrival's."""
    return NoticeEvent.PICKUP_REMINDER if dedupe_key.startswith("reminder:") else NoticeEvent.READY_FOR_PICKUP


def _now_notified_by(session: Any, notice: Any, method: str) -> str | None:
    """The channel the patron is now told by, when their preference no longer has the notice's channel (staff
    changed it while the notice waited); ``None`` while it still has it.

    An e-mail notice of an E-Mail patron is decided without a query, as before preferences existed.
    """
    channel = Channel.SMS if notice.channel == outbox.SMS else Channel.EMAIL
    if channel is Channel.EMAIL and method == NotificationMethod.EMAIL.value:
        return None
    if notice.patron_id is None:
        return method
    channels = outbox.effective_channels(session, notice.patron_id, method, _event_of(notice.dedupe_key))
    return None if channel in channels else channels[0].value


def _load_one(session: Any, notice: Any, batch: _Batch, settings: Settings) -> _Job | _Done:
    """Decide whether one claimed notice is still to be sent and, if so, read what its e-mail needs."""
    link = ""
    template = batch.templates.get(notice.template_name)
    staff = outbox.is_staff_notice(notice.dedupe_key)  # sent by hand: no status condition, moves nothing
    arrival = not shelf.is_shelf_notice(notice.dedupe_key) and not staff
    if notice.request_id is not None and not arrival and not staff:
        request = batch.requests.get(notice.request_id)
        stale = (
            shelf.stale_reason(batch.shelf, notice.dedupe_key, notice.tracking_id,
                               shelf.StaleCheck(request.status, batch.latest_tracking.get(request.id),
                                                request.status_changed_at,
                                                request.pickup.hold_days if request.pickup else None,
                                                request.pickup.id if request.pickup else None),
                               batch.now or utcnow())
            if request is not None
            else "cancelled: the request was deleted"
        )  # fmt: skip
        if stale:
            return _Done(notice.id, outbox.CANCELLED, stale)
    if notice.request_id is not None:
        request = batch.requests.get(notice.request_id)
        if request is None or (arrival and request.status != Status.AWAITING_CUSTOMER_CONTACT.value):
            where = request.status if request else "deleted"
            return _Done(
                notice.id,
                outbox.CANCELLED,
                f"cancelled: the request is no longer at Awaiting Customer Contact (now {where})",
                {"secret": None},
            )
        latest = batch.latest_tracking.get(request.id)
        if not staff and notice.tracking_id is not None and latest != notice.tracking_id:
            return _Done(notice.id, outbox.CANCELLED, "cancelled: a newer arrival has its own notice")
        if not staff and (now_by := _now_notified_by(session, notice, request.patron.notification_method)):
            return _Done(notice.id, outbox.CANCELLED, f"cancelled: the patron is now notified by {now_by}")
        if template is None:
            return _Done(notice.id, outbox.NO_TEMPLATE, outbox.no_template_reason(notice.template_name))
        to_override: tuple[str, ...] | None = None
        if notice.channel == outbox.SMS:  # the patron's mobile number now (staff may have fixed it, then Retry)
            number = outbox.patron_sms_number(session, request.patron.id)
            if not number:
                return _Done(notice.id, outbox.FAILED, outbox.NO_MOBILE_REASON)
            to_override = (number,)
        else:
            email = primary_contact(request.patron, outbox.EMAIL)
            if email is None or not email.value.strip():
                return _Done(notice.id, outbox.FAILED, outbox.NO_EMAIL_REASON)
        make_context = partial(request_row_context, request, region=settings.phone_region, shared=batch.shared)
        if notice.channel != outbox.EMAIL:  # a text is made in the batch's loop: its context's errors show here
            made = make_context()
            make_context = partial(dict, made)
    else:
        if template is None:
            return _Done(notice.id, outbox.NO_TEMPLATE, outbox.no_template_reason(notice.template_name))
        reset: dict[str, Any] | None = None
        if notice.secret:
            try:
                reset = json.loads(notice.secret)
            except ValueError:
                return _Done(
                    notice.id, outbox.FAILED, "the stored reset data is damaged; reset again", {"secret": None}
                )
        if notice.template_name == PASSWORD_RESET and not (reset and reset.get("link")):
            return _Done(
                notice.id,
                outbox.FAILED,
                "no reset link is stored for this notice (it was already used or cleared); reset the password again",
                {"secret": None},
            )
        link = str(reset.get("link", "")) if reset else ""
        if link and reset_link_expired(session, notice.dedupe_key, utcnow()):
            return _Done(notice.id, outbox.CANCELLED, EXPIRED_BEFORE_SENDING, {"secret": None})
        if notice.patron_id is None:
            return _Done(notice.id, outbox.FAILED, "the notice names no patron", {"secret": None})
        context = patron_notice_context(session, notice.patron_id, region=settings.phone_region, reset=reset)
        make_context = partial(dict, context)  # read in the session: built now
        to_override = (notice.to_address,) if notice.to_address.strip() else None
    return _Job(notice.id, notice.request_id, notice.attempts, batch.claim, template, make_context, to_override, link,
                notice.message_id, notice.dedupe_key, str(batch.shared.get("installation_id", "")),
                arrival)  # fmt: skip


def _render(job: _Job, settings: Settings) -> _Ready | _Done:
    """Render and encode one notice's e-mail: CPU only, no database (it runs while the SMTP server works).

    A leader with riders renders once, its ``requests`` listing the leader's item, then each rider's.
    """
    context = digest_context(job.context, [r.context for r in job.riders]) if job.riders else job.context
    try:
        rendered = render(job.fields, context)
    except TemplateError as exc:
        return _Done(
            job.notice_id, outbox.FAILED, f"template {job.fields.name!r} cannot be rendered: {exc}", {"secret": None}
        )
    link = job.link
    if link and link not in rendered.body_text and str(escape(link)) not in rendered.body_html:
        return _Done(
            job.notice_id,
            outbox.FAILED,
            f"the {job.fields.name!r} template does not contain "
            "{{ reset.link }}: the e-mail would not let the patron set a password; fix the template and "
            "reset again",
            {"secret": None},
        )
    to = job.to_override if job.to_override is not None else rendered.to
    rendered = replace(rendered, from_address=resolve_from(rendered.from_address, job.context["library"]["email"], ""))
    message_id = job.message_id or message_id_for(
        job.notice_id, job.dedupe_key, rendered.from_address or settings.smtp_from, job.installation_id
    )
    try:
        outgoing = build_message(rendered, notice_id=job.notice_id, message_id=message_id, settings=settings, to=to)
    except ValueError as exc:
        return _Done(job.notice_id, outbox.FAILED, str(exc), {"secret": None})
    if settings.bounce_verp:  # its own return address, so a bounce names the notice (issue 19)
        token = verp_token(job.notice_id, job.dedupe_key, job.installation_id)
        outgoing = replace(outgoing, sender=verp_address(outgoing.sender, token))
    return _Ready(
        job.notice_id,
        job.request_id,
        job.attempts,
        job.claim,
        outgoing,
        _stored_copy(rendered, to, message_id, link),
        job.arrival,
        tuple(_Rider(r.notice_id, r.request_id, r.attempts) for r in job.riders),
        job.alone,
    )


def _load(
    db: Database, claim: outbox.Claim, settings: Settings, now: datetime | None = None, *, channel: str = outbox.EMAIL
) -> tuple[list[_Job], list[_Done]]:
    """Read the claimed notices and what their messages need, in one short read transaction.

    ``channel`` is the claim's: whether a digest's leader can list several items depends on the part of its
    template that channel sends (the SMS part for a text).
    """
    jobs: list[_Job] = []
    done: list[_Done] = []
    with db.read() as session:
        # Plain rows of the columns needed, not ORM objects: a notice's stored bodies are not needed here.
        notices = session.execute(_CLAIMED_NOTICES, {"ids": list(claim.ids), "token": claim.token}).all()
        request_ids = [n.request_id for n in notices if n.request_id is not None]
        latest = session.execute(_LATEST_TRACKING, {"request_ids": request_ids}).all()
        shared = system_settings(session)
        batch = _Batch(
            claim=claim,
            templates={t.name: _fields(t, channel) for t in session.scalars(select(NoticeTemplate)) if not t.deleted},
            shared=shared,
            shelf=shelf_settings_from(shared),
            latest_tracking={int(r): int(t) for r, t in latest},
            requests=load_request_rows(session, request_ids),  # two queries for the whole batch
            now=now,
        )
        for notice in notices:
            try:
                decision = _load_one(session, notice, batch, settings)
            except Exception as exc:  # a context that cannot be built must not stop the other notices
                decision = _Done(notice.id, outbox.FAILED, f"cannot prepare the e-mail: {_one_line(exc)}")
            (jobs if isinstance(decision, _Job) else done).append(decision)  # type: ignore[arg-type]
    return _with_riders(jobs, {n.id: n.digest_leader_id for n in notices}, channel), done


def _with_riders(jobs: list[_Job], leaders: dict[int, int | None], channel: str) -> list[_Job]:
    """Each rider that is still to be sent joins its leader's job, or goes alone (see :func:`group_riders`)."""
    by_id = {job.notice_id: job for job in jobs}
    groups, alone = group_riders(
        leaders,
        [job.notice_id for job in jobs if job.arrival],
        lambda leader: template_lists_items(by_id[leader].fields, channel),
    )
    riding = {rider for riders in groups.values() for rider in riders}
    return [
        # Most notices lead no digest and are not riders sent alone: kept as they are (a copy each was 5 % of a
        # batch's read).
        replace(job, riders=tuple(by_id[r] for r in groups.get(job.notice_id, ())), alone=job.notice_id in alone)
        if job.notice_id in groups or job.notice_id in alone
        else job
        for job in jobs
        if job.notice_id not in riding
    ]


# ------------------------------------------------------------------------------------------------ sending


@dataclass(frozen=True)
class _Recorded:
    """What recording one outcome did, reported back to the sending thread."""

    notice_id: int
    state: str
    recorded: bool  # False: the lease was lost, nothing was written
    lost: str = ""  # the complaint when a lost lease must stop the cycle ("" when it need not)
    error: str = ""  # the database refused until the lease ran out: nothing was written
    delayed: str = ""  # recorded, but only on a fresh connection after the database refused for a while
    counts: tuple[str, ...] = ()  # the state of every notice recorded (a digest's leader and riders); () = (state,)


def _counts(group: tuple[GroupMember, ...], state: str) -> tuple[str, ...]:
    return tuple(member.state for member in group) if group else (state,)


#: Errors of the database or of the way to it, worth trying again on a fresh connection (a lock held too long,
#: a dropped connection, a server restarting); anything else is a fault in the statement and is not retried.
_DATABASE_ERRORS = (sqlite3.Error, psycopg.Error, SQLAlchemyError, OSError)
#: Waits between tries to record on a fresh connection: short at first (a dropped connection comes back at
#: once), then every few seconds until the notice's lease runs out.
_RECORD_RETRY_FIRST = 0.2
_RECORD_RETRY_MAX = 5.0


class _Leases:
    """Until when each of this cycle's claims holds its notices (by claim token), as far as this sender knows.

    A result that cannot be recorded is retried until then: only after that may another System Manager take
    the notice over and send it again (docs/DELIVERY.md).
    """

    def __init__(self) -> None:
        self._until: dict[str, datetime] = {}
        self._lock = threading.Lock()  # the heartbeat thread extends what the sending thread reads

    def hold(self, claim: outbox.Claim) -> None:
        with self._lock:
            self._until.setdefault(claim.token, claim.lease_until)

    def only(self, claim: outbox.Claim) -> None:
        """A new batch: the earlier claims are all recorded or given back, so only this one needs renewing."""
        with self._lock:
            self._until = {claim.token: claim.lease_until}

    def extend(self, token: str, until: datetime) -> None:
        with self._lock:
            if token in self._until:
                self._until[token] = max(until, self._until[token])

    def until(self, token: str) -> datetime | None:
        with self._lock:
            return self._until.get(token)

    def tokens(self) -> list[str]:
        with self._lock:
            return list(self._until)


class _Heartbeat:
    """Renews this sender's leases every ``lease / 3`` seconds while it sends, on a thread of its own.

    So a lease can be short (a crashed sender's notices come back after one lease, not after the longest
    possible batch), and a slow server does not make the lease run out under a sender that is alive. The thread
    only renews: sending and recording stay on the sending thread. If the database cannot be reached the lease
    is not renewed, and the sending thread notices it before starting a message or sending a final dot.
    """

    def __init__(self, db: Database, leases: _Leases, clock: _Clock, lease_seconds: float) -> None:
        self._db, self._leases, self._clock = db, leases, clock
        self._lease = timedelta(seconds=lease_seconds)
        self._period = lease_seconds / HEARTBEATS_PER_LEASE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="callslip-lease-heartbeat", daemon=True)
        #: How many renewals were written, and the last error (for tests and the log).
        self.renewed = 0
        self.last_error = ""

    def start(self) -> None:
        """Start renewing (once; later calls do nothing)."""
        if self._thread.ident is None and not self._stop.is_set():
            self._thread.start()

    def stop(self) -> None:
        """Stop renewing (the cycle is over) and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            for token in self._leases.tokens():
                until = self._clock() + self._lease
                try:
                    if outbox.renew(self._db, token, until):
                        self._leases.extend(token, until)
                        self.renewed += 1
                except Exception as exc:  # the database is unreachable: the lease runs down; the sender sees it
                    self.last_error = _one_line(exc)
                    log.warning("renewing lease %s failed: %s", token, self.last_error)


class _Recorder:
    """Commits outcomes in order, each in its own transaction, on one connection held for the cycle.

    The sending thread does it in the time the SMTP server spends on the next message's ``MAIL FROM``: the
    transport calls :meth:`flush` after writing that command and before reading the reply, so the database's
    work (on PostgreSQL its round trip and commit) overlaps the SMTP server's. :meth:`wait`, the gate before a
    message's text goes out, records whatever is still queued and says how it went.

    No second thread: on two cores a recorder thread competed with the SMTP server and the sending thread for the
    CPU and the GIL, and in alternating benchmark rounds committing on the sending thread was faster
    (docs/DELIVERY.md).
    """

    def __init__(self, db: Database, worker: str, clock: _Clock, leases: _Leases,
                 should_stop: Callable[[], bool]) -> None:  # fmt: skip
        self._db, self._worker, self._clock, self._leases = db, worker, clock, leases
        self._should_stop = should_stop
        self._writer: ResultWriter | None = None
        self._queued: list[tuple[Any, ...]] = []  # submitted, not recorded yet
        self._reports: list[_Recorded] = []  # recorded (or refused), not yet taken by wait()

    def submit(self, notice_id: int, claim: outbox.Claim, state: str, reply: str, values: dict[str, Any],
               now: datetime, advance: Advance | None = None, lost: str = "") -> None:  # fmt: skip
        """Queue one outcome; ``lost`` is the complaint to raise if the lease turns out to be lost."""
        self._queued.append((notice_id, claim.token, state, reply, values, now, advance, lost, ()))

    def submit_group(self, claim: outbox.Claim, members: tuple[GroupMember, ...], now: datetime, lost: str) -> None:
        """Queue one message's outcome for every notice it carried (a digest): one transaction for them all."""
        first = members[0]
        self._queued.append((first.notice_id, claim.token, first.state, first.reply, dict(first.values), now,
                             first.advance, lost, members))  # fmt: skip

    def _write(self, args: tuple[Any, ...]) -> bool:
        """Record ``args`` on this cycle's writer; whether it counted (False: the lease was lost)."""
        notice_id, token, state, reply, values, now, advance, _lost, group = args
        if self._writer is None:
            self._writer = ResultWriter(self._db)
        if group:
            return self._writer.record_group(token, group, worker=self._worker, now=now)
        return self._writer.record(notice_id, token, state=state, outcome=state, reply=reply, worker=self._worker,
                                   now=now, values=values, advance=advance)  # fmt: skip

    def _record(self, args: tuple[Any, ...]) -> _Recorded:
        notice_id, state, lost, group = args[0], args[2], args[7], args[8]
        try:
            recorded = self._write(args)
        except _DATABASE_ERRORS as exc:
            return self._retry(args, exc)
        except Exception as exc:
            return _Recorded(notice_id, state, False, error=self._failure(notice_id, exc))
        return _Recorded(notice_id, state, recorded, lost="" if recorded else lost, counts=_counts(group, state))

    def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()  # a writer whose record failed discards its connection

    def _retry(self, args: tuple[Any, ...], first: Exception) -> _Recorded:
        """Record again on a fresh connection, as long as the notice's lease has time left.

        The message was accepted (or its outcome is otherwise known) but the database refused the record: a lock
        held by another program for longer than the busy timeout, a dropped connection. Giving up now would
        leave the notice claimed and unrecorded, and it would be sent again once its lease runs out: a
        duplicate without a crash. So the record is tried again until the lease ends; only then is it given up.
        """
        notice_id, token, state, _reply, _values, now, _advance, lost, group = args
        self._drop_writer()
        started, tries, wait, error = time.monotonic(), 1, _RECORD_RETRY_FIRST, first
        log.warning("recording notice %s failed (%s); retrying on a fresh connection", notice_id, _one_line(first))
        # The lease as it stands now: heartbeats renewing it meanwhile do not make a hopeless retry go on forever.
        until = self._leases.until(token)
        while True:
            if until is None or self._clock() + timedelta(seconds=wait) >= until:
                break
            if self._should_stop():  # the desk is closing: as after a crash, the lease decides
                break
            time.sleep(wait)
            wait = min(wait * 2, _RECORD_RETRY_MAX)
            tries += 1
            try:
                recorded = self._write(args)
                # A connection that dropped after the commit but before its answer: the first try did it.
                recorded = recorded or self._already_recorded(notice_id, state, now)
            except _DATABASE_ERRORS as exc:
                error = exc
                self._drop_writer()
                continue
            except Exception as exc:
                self._drop_writer()
                return _Recorded(notice_id, state, False, error=self._failure(notice_id, exc))
            seconds = time.monotonic() - started
            delayed = (
                f"recording notice {notice_id} waited {seconds:.1f} s for the database ({_one_line(first)}); "
                f"recorded on a fresh connection after {tries} tries"
            )
            return _Recorded(notice_id, state, recorded, lost="" if recorded else lost, delayed=delayed,
                             counts=_counts(group, state))  # fmt: skip
        seconds = time.monotonic() - started
        return _Recorded(
            notice_id,
            state,
            False,
            error=f"{self._failure(notice_id, error)} (tried {tries} times for {seconds:.1f} s, "
            f"{'until the System Manager was stopped' if self._should_stop() else 'until its lease ran out'}; "
            "another System Manager may send it again once the lease ends)",
        )

    def _already_recorded(self, notice_id: int, state: str, now: datetime) -> bool:
        """Whether this very outcome (this worker, this time) is already in the notice's history."""
        with self._db.read() as session:
            found = session.scalar(
                select(func.count()).where(
                    NotificationAttempt.notification_id == notice_id,
                    NotificationAttempt.worker == self._worker,
                    NotificationAttempt.attempted_at == now,
                    NotificationAttempt.outcome == state,
                )
            )
        return bool(found)

    @staticmethod
    def _failure(notice_id: int, exc: Exception) -> str:
        return f"recording notice {notice_id} failed: {_one_line(exc)}"

    def flush(self) -> None:
        """Record what is queued, in order."""
        queued, self._queued = self._queued, []
        self._reports.extend(self._record(args) for args in queued)

    def wait(self) -> list[_Recorded]:
        """Record everything queued; the reports of everything recorded (or refused) since the last call."""
        self.flush()
        reports, self._reports = self._reports, []
        return reports

    def close(self) -> list[_Recorded]:
        """Record what is queued and give the connection back."""
        try:
            return self.wait()
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


def _outcome(attempts_before: int, stored: dict[str, Any], result: SendResult, reply: str,
             now: datetime) -> tuple[str, str, dict[str, Any]]:  # fmt: skip
    """A send's result as one notice's new state, history reply and columns (each rider counts its own tries)."""
    attempts = attempts_before + 1
    values: dict[str, Any] = {"attempts": attempts}
    if result.outcome is Outcome.SENT:
        return outbox.SENT, reply, values | stored | {"sent_at": now, "secret": None}
    if result.outcome is Outcome.TEMPORARY and attempts < outbox.MAX_ATTEMPTS:
        values["next_attempt_at"] = now + outbox.backoff(attempts)
        values["message_id"] = stored["message_id"]
        return outbox.RETRYING, reply, values
    if result.outcome is Outcome.TEMPORARY:
        reply = f"gave up after {attempts} attempts: {reply}"
    return outbox.FAILED, reply, values | stored | {"secret": None}


class _Sender:
    """Sends claimed notices over one SMTP connection and records each result in its own transaction.

    While the server handles message n's envelope (MAIL, RCPT, DATA), message n−1's result is committed (see
    :class:`_Recorder` for where); message n's text and final dot wait until it is (:meth:`gate`), so the server
    never holds two accepted messages that are not recorded (docs/DELIVERY.md). While the server decides on
    message n (its longest step), message n+1 is rendered (the transport's ``idle`` hook).
    """

    def __init__(self, db: Database, settings: Settings, transport: SmtpTransport, worker: str, clock: _Clock,
                 tally: _Tally, should_stop: Callable[[], bool]) -> None:  # fmt: skip
        self._db, self._settings, self._transport = db, settings, transport
        self._clock, self._tally = clock, tally
        self.leases = _Leases()
        self._recorder = _Recorder(db, worker, clock, self.leases, should_stop)
        self._jobs: deque[_Job] = deque()
        self._next: _Ready | None = None
        #: Claimed notices neither sent nor recorded, with their claim: given back on stop or error.
        self.outstanding: dict[int, outbox.Claim] = {}
        self.failed = False

    def _take_reports(self, reports: list[_Recorded]) -> bool:
        for report in reports:
            if report.delayed:  # recorded in the end; the SMTP session waited meanwhile: stop this batch
                self._tally.errors.append(report.delayed + "; the rest of the batch was given back")
                self.failed = True
            if report.error:
                self._tally.errors.append(report.error)
                self.failed = True
            elif report.recorded:
                for state in report.counts or (report.state,):
                    self._tally.count(state)
            elif report.lost:
                self._tally.errors.append(report.lost)
                self.failed = True
        return not self.failed

    def gate(self) -> bool:
        """Wait until every result handed to the recorder is committed; False if one was not (stop sending)."""
        return self._take_reports(self._recorder.wait())

    def close(self) -> None:
        """Record what is still queued and stop the recorder."""
        self._take_reports(self._recorder.close())

    # -- recording

    def record_done(self, claim: outbox.Claim, item: _Done) -> None:
        """Record a notice that is not sent (cancelled, no template, cannot be rendered)."""
        self.outstanding.pop(item.notice_id, None)
        self.leases.hold(claim)
        self._recorder.submit(item.notice_id, claim, item.state, item.reason, item.values, self._clock())

    def _record_result(self, item: _Ready, result: SendResult) -> None:
        now = self._clock()
        reply = result.reply
        if result.refused:
            reply += " (refused: " + "; ".join(f"{a}: {r}" for a, r in result.refused.items()) + ")"
        state, reply, values = _outcome(item.attempts, item.stored, result, reply, now)
        if item.alone:  # a rider sent on its own: it no longer rides in anyone's message
            values["digest_leader_id"] = None
        message_id = item.stored["message_id"]
        lost = (
            f"notice {item.notice_id}: lease lost before its result ({state}) could be recorded; another System "
            f"Manager owns it (Message-ID {message_id})"
        )
        if not item.riders:
            advance = self._advance(item.request_id, item, state, result.reply, "") if item.arrival else None
            self._recorder.submit(item.notice_id, item.claim, state, reply, values, now, advance, lost)
            return
        # A digest: one result for the leader and every rider, recorded in one transaction.
        members = [
            GroupMember(item.notice_id, state, state, reply, values,
                        self._advance(item.request_id, item, state, result.reply,
                                      digest_note("e-mail", len(item.riders), message_id)))
        ]  # fmt: skip
        for rider in item.riders:
            rider_state, rider_reply, rider_values = _outcome(rider.attempts, item.stored, result, reply, now)
            rider_reply = f"{rider_reply} (in the e-mail of notice {item.notice_id})"
            note = digest_note("e-mail", len(item.riders), message_id)
            members.append(GroupMember(rider.notice_id, rider_state, rider_state, rider_reply, rider_values,
                                       self._advance(rider.request_id, item, rider_state, result.reply,
                                                     note)))  # fmt: skip
        self._recorder.submit_group(item.claim, tuple(members), now, lost)

    @staticmethod
    def _advance(request_id: int | None, item: _Ready, state: str, server_reply: str, digest: str) -> Advance | None:
        """An arrival's request moves to Customer Notified via E-Mail once its message was accepted."""
        if state != outbox.SENT or request_id is None:
            return None
        accepted = f"e-mail to {item.stored['to_address']} accepted" + (f" ({digest})" if digest else "")
        return Advance(request_id, Status.AWAITING_CUSTOMER_CONTACT, Status.NOTIFIED_VIA_EMAIL, SYSTEM_USER,
                       f"{accepted}: {server_reply}")  # fmt: skip

    # -- preparing

    def add(self, jobs: list[_Job]) -> None:
        """Queue a loaded batch (its notices are outstanding until recorded)."""
        for job in jobs:
            for notice_id in (job.notice_id, *(r.notice_id for r in job.riders)):
                self.outstanding[notice_id] = job.claim
            self.leases.hold(job.claim)
        self._jobs.extend(jobs)

    def _render_next(self) -> None:
        while self._next is None and self._jobs and not self.failed:
            job = self._jobs.popleft()
            try:
                decision = _render(job, self._settings)
            except Exception as exc:  # one notice that cannot be encoded must not stop the others
                decision = _Done(job.notice_id, outbox.FAILED, f"cannot prepare the e-mail: {_one_line(exc)}")
            if isinstance(decision, _Ready):
                self._next = decision
            else:
                self.record_done(job.claim, decision)
                for rider in job.riders:  # the one message cannot be made: none of its items is sent
                    self.record_done(job.claim, replace(decision, notice_id=rider.notice_id))

    def take(self) -> _Ready | None:
        """The next message to send (rendered now if the idle time did not get to it)."""
        self._render_next()
        item, self._next = self._next, None
        return item

    def waiting(self, command: str) -> None:
        """Work done while the SMTP server handles a command (the transport's ``waiting`` hook; never raises).

        While it checks the sender: record the previous message's result (the commit must be done before this
        message's text goes out anyway). While it checks a recipient: build the next notice's template context.
        While it decides on the message, its longest step: render the next message.
        """
        try:
            if command == "MAIL":
                self._recorder.flush()  # records never raise: a failure becomes a report
            elif command == "RCPT" and self._next is None and self._jobs:
                with contextlib.suppress(Exception):  # a context that cannot be built fails when rendered
                    self._jobs[0].context  # noqa: B018 -- built and kept (a cached property)
            elif command == ".":
                self._render_next()
        except Exception as exc:
            self._tally.errors.append(f"preparing the next e-mail failed: {_one_line(exc)}")
            self.failed = True

    def lease_left(self, claim: outbox.Claim) -> float:
        """Seconds the claim's lease still holds, as renewed by the heartbeat."""
        until = self.leases.until(claim.token) or claim.lease_until
        return (until - self._clock()).total_seconds()

    def _final_gate(self, claim: outbox.Claim) -> bool:
        """Before the final dot: earlier results committed, and the lease outlasts the wait for the verdict."""
        if not self.gate():
            return False
        left = self.lease_left(claim)
        if left <= self._settings.smtp_timeout:
            self._tally.errors.append(
                f"the lease would run out before the server's answer ({left:.0f} s left; it could not be renewed)"
            )
            self.failed = True
            return False
        return True

    def send(self, item: _Ready) -> SendResult:
        """Send one message and hand its result to the recorder (committed before the next message's dot)."""
        result = self._transport.send(item.outgoing, gate=lambda: self._final_gate(item.claim), waiting=self.waiting)
        if result.server_wide and not result.ambiguous:
            # Not this notice's fault and certainly not accepted: it stays outstanding and is given back with the
            # rest, no attempt charged.
            return result
        if result.outcome is not Outcome.ABORTED:
            # No longer "not sent yet": if its result cannot be recorded, the lease runs out and it is retried.
            for notice_id in item.notice_ids:
                self.outstanding.pop(notice_id, None)
            self._record_result(item, result)
        return result

    def give_back(self, reason: str) -> None:
        """Release every claimed notice not recorded yet: due again at once for any System Manager."""
        self._jobs.clear()
        if self._next is not None:
            self._next = None
        by_claim: dict[str, list[int]] = {}
        for notice_id, claim in self.outstanding.items():
            by_claim.setdefault(claim.token, []).append(notice_id)
        self.outstanding.clear()
        for token, ids in by_claim.items():
            outbox.release(self._db, token, ids, reason)


#: Connection problems that wait for the server rather than for staff (a TLS or password problem needs Settings).
_BACK_OFF = (DeliveryProblem.UNREACHABLE, DeliveryProblem.SERVER_BUSY)


def _server(settings: Settings) -> str:
    return f"{settings.smtp_host}:{settings.effective_smtp_port}"


def _back_off(db: Database, settings: Settings, tally: _Tally, problem: DeliveryProblem, reason: str,
              now: datetime) -> None:  # fmt: skip
    """Record a server-wide refusal: every System Manager waits a growing delay before connecting again."""
    try:
        backoff = smtp_backoff.record_refusal(db, _server(settings), problem, reason, now)
    except Exception as exc:  # the database is down too: back off this cycle's caller at least
        backoff = smtp_backoff.Backoff(_server(settings), now + smtp_backoff.FIRST_DELAY, 1, problem, reason)
        tally.errors.append(f"could not record the back-off: {_one_line(exc)}")
    tally.problem, tally.backoff_until = problem, backoff.until
    tally.errors.append(backoff.describe())


def _backing_off(db: Database, settings: Settings, tally: _Tally, now: datetime) -> bool | None:
    """True: a back-off is in force (the tally says so); False: one ran out (clear it on success); None: none."""
    try:
        backoff = smtp_backoff.current(db, _server(settings))
    except Exception as exc:
        tally.errors.append(f"reading the SMTP back-off failed: {_one_line(exc)}")
        return None
    if backoff is None:
        return None
    if backoff.until <= now:
        return False
    tally.problem, tally.backoff_until = backoff.problem, backoff.until
    tally.errors.append(backoff.describe())
    return True


def _send_due(
    db: Database,
    settings: Settings,
    *,
    worker: str,
    password: str | None,
    clock: _Clock,
    ssl_context: ssl.SSLContext | None,
    batch_size: int,
    lease_seconds: float,
    should_stop: Callable[[], bool],
    tally: _Tally,
) -> None:
    backing_off = _backing_off(db, settings, tally, clock())
    if backing_off:
        return  # nothing claimed: the notices stay free for when the back-off ends
    transport = SmtpTransport(settings, password, ssl_context=ssl_context)
    sender = _Sender(db, settings, transport, worker, clock, tally, should_stop)
    heartbeat = _Heartbeat(db, sender.leases, clock, lease_seconds)
    # Batches are claimed and read here, between sends. Reading the next batch ahead on another thread was
    # measured too: on two cores it slowed the sending more than it saved (docs/DELIVERY.md).
    connected = False
    try:
        while not should_stop() and not sender.failed:
            claim = outbox.claim_due(db, worker, limit=batch_size, lease_seconds=lease_seconds, now=clock())
            if not claim.ids:
                return
            sender.leases.only(claim)
            heartbeat.start()  # from the first claim on (a cycle with nothing due starts no thread)
            try:
                jobs, done = _load(db, claim, settings, clock())
            except BaseException:  # give the claim back now rather than after the lease
                with contextlib.suppress(Exception):
                    outbox.release(db, claim.token, claim.ids, "not sent yet: the System Manager hit an error")
                raise
            for skipped in done:
                sender.record_done(claim, skipped)
            sender.add(jobs)
            while not sender.failed:
                if should_stop() or sender.lease_left(claim) < lease_seconds / 2:
                    # Stopping, or the heartbeat could not renew the lease: start no message that might outlive it.
                    sender.gate()
                    sender.give_back("not sent yet: the System Manager stopped")
                    return
                item = sender.take()
                if item is None:
                    break
                if not connected:
                    try:
                        transport.open()
                        connected = True
                    except SmtpConnectionError as exc:
                        sender.gate()
                        if exc.problem in _BACK_OFF:  # unreachable or refusing the session for now: back off
                            _back_off(db, settings, tally, exc.problem, str(exc), clock())
                        else:  # a setting to fix (TLS, password): the next poll tries again
                            tally.errors.append(str(exc))
                            tally.problem = exc.problem
                        sender.give_back(f"not sent yet: {exc}")
                        return
                result = sender.send(item)
                connected = not result.connection_lost
                if result.server_wide:  # a 421, a dropped connection, a 4xx to MAIL FROM: stop, back off
                    sender.gate()
                    _back_off(db, settings, tally, DeliveryProblem.SERVER_BUSY, result.reply, clock())
                    sender.give_back(f"not sent yet: the SMTP server refused every message for now ({result.reply})")
                    return
                if backing_off is False and result.outcome is Outcome.SENT:
                    with contextlib.suppress(Exception):  # the server takes messages again: no more waiting
                        smtp_backoff.clear(db)
                    backing_off = None
                if result.outcome is Outcome.ABORTED:
                    sender.give_back("not sent yet: stopped before the server accepted it")
                    return
            if not sender.gate():  # the batch is recorded before the next one is claimed (and before counting)
                return
            if len(claim.ids) < batch_size:  # a short batch: nothing more was due
                return
    finally:
        heartbeat.stop()
        transport.close()
        try:
            sender.close()
        finally:
            try:  # an unexpected error: give the rest back now rather than after the lease
                sender.give_back("not sent yet: the System Manager hit an error")
            except Exception as exc:
                tally.errors.append(f"could not release claimed notices: {_one_line(exc)}")


def _sms_outcome(job: _Job, text: sms_dispatch.SmsText, error: SmsError | None, accepted: Any, transport: str,
                 now: datetime, digest: str = "") -> tuple[str, str, dict[str, Any], Advance | None]:  # fmt: skip
    """A text's result as the notice's new state, history line, columns and the request's move.

    ``digest``: the words naming the other items of the same text (a digest's leader and riders each get them).
    """
    number = job.to_override[0] if job.to_override else ""
    attempts = job.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "body_text": text.text, "to_address": number}
    if job.alone:  # a rider sent on its own: it no longer rides in anyone's message
        values["digest_leader_id"] = None
    if error is None:
        note = sms_dispatch.sent_note(job.fields.name, number, accepted, transport) + (f" ({digest})" if digest else "")
        values |= {"sent_at": now, "message_id": accepted.provider_message_id[:300]}
        advance = None
        if job.request_id is not None and job.arrival:  # ILLiad has no SMS status: exports keep its words
            advance = Advance(job.request_id, Status.AWAITING_CUSTOMER_CONTACT, Status.NOTIFIED_VIA_EMAIL,
                              SYSTEM_USER, note)  # fmt: skip
        reply = f"{note} ({accepted.status or 'accepted'}; {text.describe()})"
        return outbox.SENT, reply, values, advance
    if isinstance(error, SmsTemporaryError) and attempts < outbox.MAX_ATTEMPTS:
        values["next_attempt_at"] = now + outbox.backoff(attempts)
        return outbox.RETRYING, error.detail, values, None
    if isinstance(error, SmsTemporaryError):
        return outbox.FAILED, f"gave up after {attempts} attempts: {error.detail}", values, None
    return outbox.FAILED, error.detail, values, None


def _send_due_sms(
    db: Database,
    settings: Settings,
    sms: SmsSettings,
    *,
    token: str | None,
    password: str | None,
    worker: str,
    clock: _Clock,
    ssl_context: ssl.SSLContext | None,
    batch_size: int,
    lease_seconds: float,
    should_stop: Callable[[], bool],
    tally: _Tally,
) -> None:
    """Claim due texts and send them one by one through the SMS transport, each result in its own transaction.

    The same claims, heartbeat, stale checks (:func:`_load`) and recorder as e-mail; texts are not pipelined (an
    HTTP request has no envelope phase to overlap with), so each result is committed before the next text goes.
    """
    resume = sms_dispatch.quiet_until(sms, clock())
    if resume is not None:
        tally.texts_resume_at = resume  # nothing claimed: the texts wait for the window to open
        return
    leases = _Leases()
    recorder = _Recorder(db, worker, clock, leases, should_stop)
    heartbeat = _Heartbeat(db, leases, clock, lease_seconds)
    line: sms_dispatch.SmsLine | None = None
    outstanding: list[int] = []
    claim: outbox.Claim | None = None
    give_back = "not sent yet: the System Manager stopped"

    def recorded() -> bool:
        ok = True
        for report in recorder.wait():
            if report.error or report.lost:
                tally.errors.append(report.error or report.lost)
                ok = False
            elif report.recorded:
                for state in report.counts or (report.state,):
                    tally.count(state)
            if report.delayed:
                tally.errors.append(report.delayed)
        return ok

    def unavailable(exc: SmsError) -> None:
        nonlocal give_back
        give_back = f"not sent yet: {exc.detail}"
        tally.errors.append(f"text messages not sent: {exc.detail}")
        tally.problem = tally.problem or sms_dispatch.problem_of(exc)

    try:
        while not should_stop():
            claim = outbox.claim_due(db, worker, limit=batch_size, lease_seconds=lease_seconds, now=clock(),
                                     channel=outbox.SMS)  # fmt: skip
            if not claim.ids:
                return
            leases.only(claim)
            heartbeat.start()
            outstanding = list(claim.ids)
            jobs, done = _load(db, claim, settings, clock(), channel=outbox.SMS)
            for skipped in done:
                outstanding.remove(skipped.notice_id)
                recorder.submit(skipped.notice_id, claim, skipped.state, skipped.reason, skipped.values, clock())
            if not recorded():
                return
            carriers = sms_dispatch.carriers_of(db, [job.notice_id for job in jobs])
            for job in jobs:
                left = ((leases.until(claim.token) or claim.lease_until) - clock()).total_seconds()
                if should_stop() or left < lease_seconds / 2:
                    return  # the rest is given back below
                group = (job, *job.riders)  # a digest: one text lists the leader's item and each rider's
                context = digest_context(job.context, [r.context for r in job.riders]) if job.riders else job.context
                try:
                    text = sms_dispatch.sms_text(job.fields.name, job.fields.body_sms, context, sms.max_segments)
                except TemplateError as exc:
                    for member in group:
                        outstanding.remove(member.notice_id)
                        recorder.submit(member.notice_id, claim, outbox.FAILED, f"no text sent: {exc}", {}, clock())
                    if not recorded():
                        return
                    continue
                if line is None:
                    try:
                        line = sms_dispatch.SmsLine(sms, token, settings, password, ssl_context=ssl_context)
                    except SmsError as exc:
                        unavailable(exc)
                        return
                outgoing = sms_dispatch.SmsOutgoing(
                    job.notice_id, job.dedupe_key, job.to_override[0] if job.to_override else "",
                    carriers.get(job.notice_id, ""), text, str(job.context["library"].get("email", "")),
                    job.installation_id,
                )  # fmt: skip
                error: SmsError | None = None
                accepted: Any = None
                try:
                    accepted = line.send(outgoing)
                except (SmsTemporaryError, SmsPermanentError) as exc:
                    error = exc
                except SmsError as exc:  # the account, not the patron: nothing charged, the claim given back
                    unavailable(exc)
                    return
                for member in group:
                    outstanding.remove(member.notice_id)
                now = clock()
                others = len(job.riders)
                note = f"in one text with {others} other item{'s' if others > 1 else ''}" if others else ""
                state, reply, values, advance = _sms_outcome(job, text, error, accepted, line.name, now, note)
                lost = (f"notice {job.notice_id}: lease lost before its text's result ({state}) could be recorded; "
                        "another System Manager owns it")  # fmt: skip
                if not job.riders:
                    recorder.submit(job.notice_id, claim, state, reply, values, now, advance, lost)
                else:  # one result for the leader and every rider, in one transaction
                    members = [GroupMember(job.notice_id, state, state, reply, values, advance)]
                    for rider in job.riders:
                        r_state, r_reply, r_values, r_advance = _sms_outcome(rider, text, error, accepted, line.name,
                                                                             now, note)  # fmt: skip
                        if error is None:
                            r_values["message_id"] = values["message_id"]
                        members.append(GroupMember(rider.notice_id, r_state, r_state,
                                                   f"{r_reply} (in the text of notice {job.notice_id})", r_values,
                                                   r_advance))  # fmt: skip
                    recorder.submit_group(claim, tuple(members), now, lost)
                if not recorded():
                    return
            if len(claim.ids) < batch_size:
                return
    finally:
        heartbeat.stop()
        if line is not None:
            line.close()
        try:
            recorded()
            if claim is not None and outstanding:
                outbox.release(db, claim.token, outstanding, give_back)
        except Exception as exc:
            tally.errors.append(f"could not release claimed texts: {_one_line(exc)}")
        finally:
            recorder.close()


def _move_on(db: Database, clock: _Clock, worker: str, tally: _Tally) -> None:
    """Notices that failed for good (now or by a bounce) move on to the patron's next channel."""
    try:
        tally.fallbacks += fallback.advance_fallbacks(db, now=clock(), worker=worker).created
    except Exception as exc:
        tally.errors.append(f"moving failed notices to the next channel failed: {_one_line(exc)}")


def _no_from_address(db: Database, settings: Settings, tally: _Tally) -> str | None:
    try:
        return no_from_address(db, settings)
    except Exception as exc:
        tally.errors.append(f"checking the From address failed: {_one_line(exc)}")
        return None


def _safe_count(db: Database, tally: _Tally) -> int:
    try:
        return outbox.count_waiting(db)
    except Exception as exc:
        tally.errors.append(f"counting waiting notices failed: {_one_line(exc)}")
        return 0


def _send_texts(db: Database, settings: Settings, *, worker: str, password: str | None, token: str | None,
                clock: _Clock, ssl_context: ssl.SSLContext | None, batch_size: int, should_stop: Callable[[], bool],
                send: bool, lease_seconds: float | None, tally: _Tally) -> SmsSettings | None:  # fmt: skip
    """The cycle's text messages (after the e-mails); the SMS settings read, or None if they could not be."""
    try:
        sms = load_sms_settings(db)
    except Exception as exc:
        tally.errors.append(f"reading the SMS settings failed: {_one_line(exc)}")
        return None
    if sms.transport == "off":
        try:
            waiting = outbox.count_waiting(db, channels=(outbox.SMS,))
        except Exception as exc:
            tally.errors.append(f"counting waiting texts failed: {_one_line(exc)}")
            return sms
        if waiting:  # said once per cycle, like "e-mail sending is not configured"
            tally.problem = tally.problem or DeliveryProblem.SMS_NOT_CONFIGURED
            tally.errors.append(f"text messages are switched off (Customization Manager → SMS): {waiting} text(s) "
                                "waiting")  # fmt: skip
        return sms
    if should_stop() or not send:
        return sms
    if sms.transport == "gateway" and tally.backoff_until is not None:
        return sms  # the gateway's SMTP server asked us to wait: the texts wait with the e-mails
    try:
        _send_due_sms(db, settings, sms, token=token, password=password, worker=worker, clock=clock,
                      ssl_context=ssl_context, batch_size=min(batch_size, sms_dispatch.SMS_BATCH_SIZE),
                      lease_seconds=lease_seconds or default_lease_seconds(settings), should_stop=should_stop,
                      tally=tally)  # fmt: skip
    except Exception as exc:
        tally.errors.append(f"sending text messages failed: {_one_line(exc)}")
    return sms


def run_cycle(
    db: Database,
    settings: Settings,
    *,
    worker: str | None = None,
    password: str | None = None,
    now: datetime | None = None,
    ssl_context: ssl.SSLContext | None = None,
    batch_size: int = BATCH_SIZE,
    lease_seconds: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    send: bool = True,
    sms_token: str | None = None,
) -> CycleSummary:
    """Run one full System Manager cycle and say what it did; never raises for a server or data problem.

    Args:
        worker: name recorded in leases and history (default ``host:pid``).
        password: SMTP password (keyring or service environment), ``None`` without AUTH.
        now: the cycle's time (tests move it to expire leases and backoffs).
        ssl_context: TLS context (tests trust their sink's certificate with it).
        lease_seconds: how long a claim is exclusive without renewal (default: 60 s, or 3 × the SMTP timeout if
            longer); a heartbeat renews it while the cycle sends.
        should_stop: polled between messages; True stops the cycle early (the rest is released, not lost).
        send: False routes and scans only (the GUI passes it when the SMTP password cannot be read).
        sms_token: the SMS provider's auth token (keyring, or ``CALLSLIP_SMS_AUTH_TOKEN`` when headless); texts
            go after the e-mails through the transport chosen in the shared SMS settings.
    """
    started = time.monotonic()
    worker = worker or default_worker()
    try:
        clock = _Clock(db, now)
    except Exception as exc:  # the database cannot be reached at all: nothing can be claimed or recorded
        return CycleSummary(started_at=now or utcnow(), seconds=time.monotonic() - started, worker=worker, pending=-1,
                            errors=[f"the database cannot be reached: {_one_line(exc)}"])  # fmt: skip
    started_at = clock()
    stop = should_stop or (lambda: False)
    tally = _Tally()
    try:
        tally.routed = len(route_due_requests(db, now=clock()))
    except Exception as exc:
        tally.errors.append(f"routing failed: {_one_line(exc)}")
    try:
        tally.created = scan_arrivals(db, now=clock()).created
        upkeep = outbox.tidy(db, now=clock())
        tally.cancelled += upkeep.cancelled
    except Exception as exc:
        tally.errors.append(f"checking for arrivals failed: {_one_line(exc)}")
    try:  # a patron's arrivals close together go out as one message (issue 18, part 4)
        gather(db, now=clock())
    except Exception as exc:
        tally.errors.append(f"gathering a patron's arrivals into one message failed: {_one_line(exc)}")
    try:
        shelf_run = shelf.run_shelf(db, now=clock())
        tally.reminders, tally.expired, tally.skipped = shelf_run.reminders, shelf_run.expired, shelf_run.skipped
    except Exception as exc:
        tally.errors.append(f"the hold shelf pass failed: {_one_line(exc)}")
    if not settings.smtp_host:
        waiting = _safe_count(db, tally)
        if waiting:
            tally.problem = DeliveryProblem.NOT_CONFIGURED
            tally.errors.append(
                f"e-mail sending is not configured (no SMTP server in Settings): {waiting} notice(s) waiting"
            )
    elif stop() or not send:
        pass
    elif (no_from := _no_from_address(db, settings, tally)) is not None:
        tally.problem = DeliveryProblem.NO_FROM_ADDRESS  # nothing claimed: the notices wait until it is given
        tally.errors.append(f"{no_from}: {_safe_count(db, tally)} notice(s) waiting")
    else:
        lease = lease_seconds or default_lease_seconds(settings)
        try:
            _send_due(
                db,
                settings,
                worker=worker,
                password=password,
                clock=clock,
                ssl_context=ssl_context,
                batch_size=batch_size,
                lease_seconds=lease,
                should_stop=stop,
                tally=tally,
            )
        except Exception as exc:
            tally.errors.append(f"sending failed: {_one_line(exc)}")
    _move_on(db, clock, worker, tally)  # an e-mail that failed for good may go on as a text in this cycle
    sms = _send_texts(db, settings, worker=worker, password=password, token=sms_token, clock=clock,
                      ssl_context=ssl_context, batch_size=batch_size, should_stop=stop, send=send,
                      lease_seconds=lease_seconds, tally=tally)  # fmt: skip
    _move_on(db, clock, worker, tally)  # a text that failed for good goes on to the next channel at once
    # Texts count as waiting only when a transport can send them: with texts off the run loop must not spin.
    channels = (outbox.EMAIL, outbox.SMS) if sms is not None and sms.transport != "off" else (outbox.EMAIL,)
    next_due: datetime | None = None
    try:
        pending = outbox.count_waiting(db, channels=channels)
        next_due = outbox.next_due_at(db) if pending else None
        texts_due = outbox.next_due_at(db, channels=(outbox.SMS,)) if pending and outbox.SMS in channels else None
    except Exception as exc:
        pending, texts_due = -1, None
        tally.errors.append(f"counting waiting notices failed: {_one_line(exc)}")
    texts_problem = tally.problem in sms_dispatch.SMS_PROBLEMS
    if tally.problem is not None and not texts_problem and next_due is not None:
        # Notices kept waiting by a problem are "due" at once, but the next try is at the back-off's end (a busy
        # or unreachable server) or the next poll (a setting to fix), not in a loop now.
        next_due = max(next_due, tally.backoff_until) if tally.backoff_until else None
    if texts_due is not None and tally.texts_resume_at is not None:
        texts_due = max(texts_due, tally.texts_resume_at)  # quiet hours: not before the window opens
    # Texts held by a problem (their own, or the gateway's SMTP server's) wait for the next poll.
    texts_held = texts_problem or (tally.problem is not None and sms is not None and sms.transport == "gateway")
    if texts_due is not None and not texts_held:
        next_due = min(next_due, texts_due) if next_due is not None else texts_due
    summary = CycleSummary(
        started_at=started_at,
        seconds=time.monotonic() - started,
        worker=worker,
        pending=pending,
        next_due_at=next_due,
        **vars(tally),  # the counters and errors, named as in CycleSummary
    )
    if not stop():  # every workstation's banner reads this verdict (a stopped cycle has none to give)
        record_cycle(db, worker=worker, at=started_at, problem=summary.problem, detail="; ".join(summary.errors),
                     backoff_until=summary.backoff_until)  # fmt: skip
    return summary
