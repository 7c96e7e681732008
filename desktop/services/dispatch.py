"""One System Manager cycle: route, find arrivals, claim due notices, render, send over one SMTP connection,
record — the same code for the GUI poller and ``callslip-manager run``.

No network I/O happens inside a database transaction: a claim, the rendering (a read) and each result are
separate short transactions, and the SMTP conversation happens between them. Each sent notice is recorded in
its own transaction right after the server's 250, so a crash can leave at most the one message in flight
unrecorded (docs/DELIVERY.md).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import NoticeTemplate, Notification, Patron, Request, Tracking
from desktop.domain.clock import utcnow
from desktop.domain.methods import NotificationMethod
from desktop.domain.statuses import Status
from desktop.services import outbox
from desktop.services.mailer import (
    Outcome,
    OutgoingMessage,
    SendResult,
    SmtpConnectionError,
    SmtpTransport,
    build_message,
    message_id_for,
)
from desktop.services.notice_context import (
    patron_notice_context,
    primary_contact,
    request_notice_context,
    system_settings,
)
from desktop.services.routing import route_due_requests, scan_arrivals
from desktop.services.status import SYSTEM_USER, advance_if_at
from desktop.services.templates import PASSWORD_RESET, RenderedNotice, TemplateError, TemplateFields, render

BATCH_SIZE = 100
#: A claim's lease. A sender stops starting new messages after half of it, so a slow send (each SMTP step is
#: bounded by the timeout) can never outlive the lease and overlap with a sender that took over.
MIN_LEASE_SECONDS = 300.0


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
        line = ", ".join(parts) + f" ({self.seconds:.2f} s)"
        if self.errors:
            line += " — " + "; ".join(self.errors)
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
class _Ready:
    notice_id: int
    request_id: int | None
    attempts: int
    outgoing: OutgoingMessage
    stored: dict[str, Any]  # the copy kept in the notice once done (reset links redacted)


@dataclass(frozen=True)
class _Done:
    notice_id: int
    state: str
    reason: str
    values: dict[str, Any] = field(default_factory=dict)


def _fields(template: NoticeTemplate) -> TemplateFields:
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
    )


def _redact(text: str, secret_text: str) -> str:
    return text.replace(secret_text, outbox.REDACTED_LINK) if secret_text else text


def _stored_copy(rendered: RenderedNotice, to: tuple[str, ...], message_id: str, link: str) -> dict[str, Any]:
    return {
        "from_address": rendered.from_address,
        "to_address": ", ".join(to)[:500],
        "cc": ", ".join(rendered.cc)[:500],
        "bcc": ", ".join(rendered.bcc)[:500],
        "subject": _redact(rendered.subject, link)[:500],
        "body_text": _redact(rendered.body_text, link),
        "body_html": _redact(rendered.body_html, link),
        "message_id": message_id,
    }


@dataclass(frozen=True)
class _Batch:
    """What every notice of a claimed batch shares, read once: templates, shared settings, newest Tracking ids."""

    templates: dict[str, NoticeTemplate]
    shared: dict[str, Any]
    latest_tracking: dict[int, int]


def _prepare_one(session: Any, notice: Notification, batch: _Batch, settings: Settings) -> _Ready | _Done:
    """Decide what to do with one claimed notice: a message to send, or a final state with its reason."""
    templates = batch.templates
    link = ""
    template = templates.get(notice.template_name)
    if notice.request_id is not None:
        request = session.get(Request, notice.request_id)
        if request is None or request.status != Status.AWAITING_CUSTOMER_CONTACT.value:
            where = request.status if request else "deleted"
            return _Done(
                notice.id,
                outbox.CANCELLED,
                f"cancelled: the request is no longer at Awaiting Customer Contact (now {where})",
                {"secret": None},
            )
        latest = batch.latest_tracking.get(request.id)
        if notice.tracking_id is not None and latest != notice.tracking_id:
            return _Done(notice.id, outbox.CANCELLED, "cancelled: a newer arrival has its own notice")
        if request.patron.notification_method != NotificationMethod.EMAIL.value:
            return _Done(
                notice.id,
                outbox.CANCELLED,
                f"cancelled: the patron is now notified by {request.patron.notification_method}",
            )
        if template is None or template.deleted:
            return _Done(notice.id, outbox.NO_TEMPLATE, outbox.no_template_reason(notice.template_name))
        email = primary_contact(request.patron, outbox.EMAIL)
        if email is None or not email.value.strip():
            return _Done(notice.id, outbox.FAILED, outbox.NO_EMAIL_REASON)
        context = request_notice_context(session, request.id, region=settings.phone_region, shared=batch.shared)
        to_override: tuple[str, ...] | None = None
    else:
        if template is None or template.deleted:
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
        if notice.patron_id is None:
            return _Done(notice.id, outbox.FAILED, "the notice names no patron", {"secret": None})
        context = patron_notice_context(session, notice.patron_id, region=settings.phone_region, reset=reset)
        to_override = (notice.to_address,) if notice.to_address.strip() else None
    try:
        rendered = render(_fields(template), context)
    except TemplateError as exc:
        return _Done(
            notice.id, outbox.FAILED, f"template {notice.template_name!r} cannot be rendered: {exc}", {"secret": None}
        )
    if link and link not in rendered.body_text and link not in rendered.body_html:
        return _Done(
            notice.id,
            outbox.FAILED,
            f"the {notice.template_name!r} template does not contain "
            "{{ reset.link }}: the e-mail would not let the patron set a password; fix the template and "
            "reset again",
            {"secret": None},
        )
    to = to_override if to_override is not None else rendered.to
    message_id = notice.message_id or message_id_for(
        notice.id, notice.dedupe_key, rendered.from_address or settings.smtp_from
    )
    try:
        outgoing = build_message(rendered, notice_id=notice.id, message_id=message_id, settings=settings, to=to)
    except ValueError as exc:
        return _Done(notice.id, outbox.FAILED, str(exc), {"secret": None})
    return _Ready(notice.id, notice.request_id, notice.attempts, outgoing, _stored_copy(rendered, to, message_id, link))


def _prepare(db: Database, claim: outbox.Claim, settings: Settings) -> tuple[list[_Ready], list[_Done]]:
    ready: list[_Ready] = []
    done: list[_Done] = []
    with db.read() as session:
        notices = session.scalars(
            select(Notification)
            .where(Notification.id.in_(claim.ids), Notification.lease_owner == claim.token)
            .order_by(Notification.id)
        ).all()
        request_ids = [n.request_id for n in notices if n.request_id is not None]
        # Load every request of the batch with what its context needs in a few queries, not a few per notice;
        # ``loaded`` keeps them in the session's identity map while the notices are prepared.
        loaded = session.scalars(
            select(Request)
            .where(Request.id.in_(request_ids))
            .options(
                selectinload(Request.patron).selectinload(Patron.contact_points),
                selectinload(Request.patron).selectinload(Patron.pickup_location),
                selectinload(Request.pickup_location),
            )
        ).all()
        latest = session.execute(
            select(Tracking.request_id, func.max(Tracking.id))
            .where(Tracking.request_id.in_(request_ids))
            .group_by(Tracking.request_id)
        ).all()
        batch = _Batch(
            templates={t.name: t for t in session.scalars(select(NoticeTemplate))},
            shared=system_settings(session),
            latest_tracking={int(r): int(t) for r, t in latest},
        )
        for notice in notices:
            try:
                decision = _prepare_one(session, notice, batch, settings)
            except Exception as exc:  # a context that cannot be built must not stop the other notices
                decision = _Done(notice.id, outbox.FAILED, f"cannot prepare the e-mail: {_one_line(exc)}")
            (ready if isinstance(decision, _Ready) else done).append(decision)  # type: ignore[arg-type]
        del loaded
    return ready, done


# ------------------------------------------------------------------------------------------------- record


def _record_done(
    db: Database, claim: outbox.Claim, items: list[_Done], worker: str, now: datetime, tally: _Tally
) -> None:
    if not items:
        return
    with db.write() as session:
        for item in items:
            if outbox.record(
                session,
                item.notice_id,
                claim.token,
                state=item.state,
                outcome=item.state,
                reply=item.reason,
                worker=worker,
                now=now,
                values=item.values,
            ):
                tally.count(item.state)


def _record_result(
    db: Database, claim: outbox.Claim, item: _Ready, result: SendResult, worker: str, now: datetime, tally: _Tally
) -> bool:
    """Record one send's result in its own transaction; False when the lease was lost (nothing recorded)."""
    reply = result.reply
    if result.refused:
        reply += " (refused: " + "; ".join(f"{a}: {r}" for a, r in result.refused.items()) + ")"
    attempts = item.attempts + 1
    values: dict[str, Any] = {"attempts": attempts}
    if result.outcome is Outcome.SENT:
        state = outbox.SENT
        values |= item.stored | {"sent_at": now, "secret": None}
    elif result.outcome is Outcome.TEMPORARY and attempts < outbox.MAX_ATTEMPTS:
        state = outbox.RETRYING
        values["next_attempt_at"] = now + outbox.backoff(attempts)
        values["message_id"] = item.stored["message_id"]
    else:
        state = outbox.FAILED
        if result.outcome is Outcome.TEMPORARY:
            reply = f"gave up after {attempts} attempts: {reply}"
        values |= item.stored | {"secret": None}
    with db.write() as session:
        if not outbox.record(
            session,
            item.notice_id,
            claim.token,
            state=state,
            outcome=state,
            reply=reply,
            worker=worker,
            now=now,
            values=values,
        ):
            tally.errors.append(
                f"notice {item.notice_id}: lease lost before its result ({state}) could be recorded; another System "
                f"Manager owns it (Message-ID {item.stored['message_id']})"
            )
            return False
        tally.count(state)
        if state == outbox.SENT and item.request_id is not None:
            note = f"e-mail to {item.stored['to_address']} accepted: {result.reply}"
            advance_if_at(session, item.request_id, Status.AWAITING_CUSTOMER_CONTACT, Status.NOTIFIED_VIA_EMAIL,
                          SYSTEM_USER, now=now, note=note)  # fmt: skip
    return True


class _Recorder:
    """Records results on its own thread, in order, while the next message is transferred.

    :meth:`gate` is the SMTP transport's hook before the final dot: it waits until the previous result is
    committed. So the transfer of message n+1 overlaps the commit of message n, yet the server never holds
    two accepted messages that are not recorded (docs/DELIVERY.md).
    """

    def __init__(self, db: Database, worker: str, clock: _Clock, tally: _Tally, *, pipeline: bool) -> None:
        self._db, self._worker, self._clock, self._tally = db, worker, clock, tally
        # Without a pipeline (the GUI poller, whose QThread should not start Python threads) results are recorded
        # at once, in the sending thread: the same guarantee, without the overlap.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callslip-recorder") if pipeline else None
        self._last: Future[bool] | None = None
        self.failed = False

    def submit(self, claim: outbox.Claim, item: _Ready, result: SendResult) -> None:
        """Queue one result (FIFO), or record it now without a pipeline."""
        args = (self._db, claim, item, result, self._worker, self._clock(), self._tally)
        if self._pool is not None:
            self._last = self._pool.submit(_record_result, *args)
            return
        try:
            if not _record_result(*args):
                self.failed = True
        except Exception as exc:
            self._tally.errors.append(f"recording a result failed: {_one_line(exc)}")
            self.failed = True

    def gate(self) -> bool:
        """Wait for every queued result to be committed; False if one could not be (stop sending)."""
        last, self._last = self._last, None
        if last is None:
            return not self.failed
        try:
            if not last.result():
                self.failed = True
        except Exception as exc:
            self._tally.errors.append(f"recording a result failed: {_one_line(exc)}")
            self.failed = True
        return not self.failed

    def close(self) -> None:
        """Finish what is queued and stop the thread."""
        self.gate()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


# --------------------------------------------------------------------------------------------------- cycle


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
    pipeline: bool,
) -> None:
    transport = SmtpTransport(settings, password, ssl_context=ssl_context)
    recorder = _Recorder(db, worker, clock, tally, pipeline=pipeline)
    connected = False
    claim: outbox.Claim | None = None
    outstanding: list[int] = []

    def give_back(reason: str) -> None:
        nonlocal outstanding
        if claim is not None and outstanding:
            outbox.release(db, claim.token, outstanding, reason)
        outstanding = []

    try:
        while not should_stop() and not recorder.failed:
            claim = outbox.claim_due(db, worker, limit=batch_size, lease_seconds=lease_seconds, now=clock())
            if not claim.ids:
                return
            deadline = time.monotonic() + lease_seconds / 2
            outstanding = list(claim.ids)
            ready, done = _prepare(db, claim, settings)
            _record_done(db, claim, done, worker, clock(), tally)
            outstanding = [item.notice_id for item in ready]
            for index, item in enumerate(ready):
                if should_stop() or time.monotonic() > deadline:
                    recorder.gate()
                    give_back("not sent yet: the System Manager stopped")
                    return
                if not connected:
                    try:
                        transport.open()
                        connected = True
                    except SmtpConnectionError as exc:
                        recorder.gate()
                        tally.errors.append(str(exc))
                        give_back(f"not sent yet: {exc}")
                        return
                result = transport.send(item.outgoing, gate=recorder.gate)
                connected = not result.connection_lost
                if result.outcome is Outcome.ABORTED:
                    give_back("not sent yet: recording the previous result failed")
                    return
                recorder.submit(claim, item, result)
                outstanding = [r.notice_id for r in ready[index + 1 :]]
            if not recorder.gate():  # the batch is recorded before the next claim (and before counting)
                return
    finally:
        transport.close()
        recorder.close()
        try:  # an unexpected error: give the rest back now rather than after the lease
            give_back("not sent yet: the System Manager hit an error")
        except Exception as exc:
            tally.errors.append(f"could not release claimed notices: {_one_line(exc)}")


def _safe_count(db: Database, tally: _Tally) -> int:
    try:
        return outbox.count_waiting(db)
    except Exception as exc:
        tally.errors.append(f"counting waiting notices failed: {_one_line(exc)}")
        return 0


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
    pipeline: bool = True,
) -> CycleSummary:
    """Run one full System Manager cycle and say what it did; never raises for a server or data problem.

    Args:
        worker: name recorded in leases and history (default ``host:pid``).
        password: SMTP password (keyring or service environment), ``None`` without AUTH.
        now: the cycle's time (tests move it to expire leases and backoffs).
        ssl_context: TLS context (tests trust their sink's certificate with it).
        lease_seconds: how long a claim is exclusive (default: 300 s, or 20 × the SMTP timeout if longer).
        should_stop: polled between messages; True stops the cycle early (the rest is released, not lost).
        send: False routes and scans only (the GUI passes it when the SMTP password cannot be read).
        pipeline: record each result on a helper thread while the next message is transferred (faster); the
            GUI poller passes False because its QThread should not start Python threads.
    """
    started = time.monotonic()
    clock = _Clock(db, now)
    started_at = clock()
    worker = worker or default_worker()
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
    if not settings.smtp_host:
        waiting = _safe_count(db, tally)
        if waiting:
            tally.errors.append(
                f"e-mail sending is not configured (no SMTP server in Settings): {waiting} notice(s) waiting"
            )
    elif stop() or not send:
        pass
    else:
        lease = lease_seconds or max(MIN_LEASE_SECONDS, settings.smtp_timeout * 20)
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
                pipeline=pipeline,
            )
        except Exception as exc:
            tally.errors.append(f"sending failed: {_one_line(exc)}")
    next_due: datetime | None = None
    try:
        pending = outbox.count_waiting(db)
        next_due = outbox.next_due_at(db) if pending else None
    except Exception as exc:
        pending = -1
        tally.errors.append(f"counting waiting notices failed: {_one_line(exc)}")
    return CycleSummary(
        started_at=started_at,
        seconds=time.monotonic() - started,
        worker=worker,
        pending=pending,
        next_due_at=next_due,
        **vars(tally),  # the counters and errors, named as in CycleSummary
    )
