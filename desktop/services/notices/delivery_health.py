"""Why e-mail notices wait, as every workstation sees it: the System Manager's last verdict, kept in the database.

Each System Manager (a workstation's poller or a headless ``callslip-manager run`` on a server) records at the
end of every cycle which delivery problem stopped it (``None``: none), since when that problem has been seen,
until when it backs off, who it is and when it ran — one ``system_settings`` row per System Manager
(``delivery_health:<worker>``), so several of them never overwrite each other. :func:`read_health` combines
those rows with the *current* counts of waiting and failed notices (not the last cycle's), which is what the
desk's banner and the status-bar indicator show.

Combining: when any System Manager that ran recently sent without a problem, notices are flowing and no problem
is shown (a workstation without an SMTP server beside a server that sends is normal). Otherwise the most recent
problem is shown, with the earliest time it was first seen. When no System Manager ran recently while notices
wait, that is the reason.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import aliased

from desktop.db.engine import Database
from desktop.db.models import Notification, Request, SystemSetting
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status
from desktop.services.notices import smtp_backoff
from desktop.services.notices.delivery_problems import DeliveryProblem
from desktop.services.notices.outbox import EMAIL, FAILED, NO_TEMPLATE, PENDING, RETRYING, WAITING_STATES

log = logging.getLogger(__name__)

KEY_PREFIX = "delivery_health:"
#: A System Manager that has not reported for this long no longer speaks for the library.
FRESH_FOR = timedelta(hours=1)
#: Reports older than this are deleted (a workstation's worker name changes with every start).
KEEP_FOR = timedelta(days=7)


@dataclass(frozen=True)
class WorkerReport:
    """One System Manager's last cycle, as recorded."""

    worker: str
    checked_at: datetime
    problem: DeliveryProblem | None
    detail: str
    since: datetime | None
    backoff_until: datetime | None


@dataclass(frozen=True)
class DeliveryHealth:
    """Why notices wait right now, for the banner and the indicator.

    Attributes:
        problem: the delivery problem that keeps notices waiting (``None``: none is known).
        detail: the System Manager's own words about it (the server's reply, the host name).
        since: when that problem was first seen ("unreachable since …").
        backoff_until: no connection is tried before then (the server asked to wait, or was unreachable).
        worker: the System Manager that reported it (``host:pid``), ``""`` when none ever ran.
        checked_at: when that System Manager last ran (``None``: never).
        manager_missing: notices wait but no System Manager ran within :data:`FRESH_FOR`.
        waiting: notices pending or retrying now.
        failed: requests still awaiting contact whose e-mail notice failed (or has no template) now.
        read_at: when these figures were read.
    """

    problem: DeliveryProblem | None
    detail: str
    since: datetime | None
    backoff_until: datetime | None
    worker: str
    checked_at: datetime | None
    manager_missing: bool
    waiting: int
    failed: int
    read_at: datetime

    @property
    def blocked(self) -> bool:
        """Something stops notices from going out (the banner shows it with its remedy)."""
        return self.problem is not None or self.manager_missing


def _key(worker: str) -> str:
    return (KEY_PREFIX + worker)[:100]


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _problem(value: Any) -> DeliveryProblem | None:
    try:
        return DeliveryProblem(value) if value else None
    except ValueError:  # a problem a newer version recorded: still a problem, shown in its own words
        return DeliveryProblem.SESSION_REFUSED


def _report(worker: str, raw: str) -> WorkerReport | None:
    try:
        data = json.loads(raw)
        checked = _time(data.get("checked_at"))
    except (ValueError, TypeError, AttributeError):
        return None
    if checked is None:
        return None
    return WorkerReport(
        worker=worker,
        checked_at=checked,
        problem=_problem(data.get("problem")),
        detail=str(data.get("detail", "")),
        since=_time(data.get("since")),
        backoff_until=_time(data.get("backoff_until")),
    )


def record_cycle(
    db: Database,
    *,
    worker: str,
    at: datetime,
    problem: DeliveryProblem | None,
    detail: str = "",
    backoff_until: datetime | None = None,
) -> None:
    """Record one System Manager's cycle (called at the end of every cycle); never raises.

    The first-seen time of a problem is kept while the same problem continues, so the banner can say
    "unreachable since 09:12" rather than the time of the last attempt.
    """
    key = _key(worker)
    try:
        with db.write() as session:
            row = session.get(SystemSetting, key)
            previous = _report(worker, row.value) if row is not None else None
            since = None
            if problem is not None:
                same = previous is not None and previous.problem is problem and previous.since is not None
                since = previous.since if same and previous is not None else at
            value = json.dumps(
                {
                    "checked_at": at.isoformat(),
                    "problem": problem.value if problem is not None else None,
                    "detail": detail[:1000],
                    "since": since.isoformat() if since is not None else None,
                    "backoff_until": backoff_until.isoformat() if backoff_until is not None else None,
                }
            )
            if row is None:
                session.add(SystemSetting(key=key, value=value, updated_by=worker[:100], updated_at=at))
            else:
                row.value = value
                row.updated_by = worker[:100]
                row.updated_at = at
            session.execute(
                delete(SystemSetting).where(
                    SystemSetting.key.startswith(KEY_PREFIX), SystemSetting.updated_at < at - KEEP_FOR
                )
            )
    except Exception:  # the health record is a courtesy: a cycle never fails because of it
        log.warning("could not record the System Manager's delivery health", exc_info=True)


def _host(worker: str) -> str:
    return worker.split(":", 1)[0]


def worker_reports(db: Database) -> list[WorkerReport]:
    """Each machine's last recorded cycle, newest first.

    A worker's name is ``host:pid[:gui]``; a restarted workstation gets a new one, so only the newest report
    of each host counts (an old process's verdict must not hide the new one's problem).
    """
    with db.read() as session:
        rows = session.execute(
            select(SystemSetting.key, SystemSetting.value).where(SystemSetting.key.startswith(KEY_PREFIX))
        ).all()
    reports = [r for key, raw in rows if (r := _report(key[len(KEY_PREFIX) :], raw)) is not None]
    newest: dict[str, WorkerReport] = {}
    for report in sorted(reports, key=lambda r: r.checked_at, reverse=True):
        newest.setdefault(_host(report.worker), report)
    return list(newest.values())


def current_counts(db: Database) -> tuple[int, int]:
    """``(waiting, failed)`` now: notices pending or retrying, and requests still awaiting contact whose latest
    e-mail notice failed or has no template."""
    latest = aliased(Notification)
    newest = (
        select(func.max(latest.id))
        .where(latest.request_id == Request.id, latest.channel == EMAIL)
        .correlate(Request)
        .scalar_subquery()
    )
    with db.read() as session:
        waiting = (  # e-mails only: a hold-shelf call or letter waits for staff, not for the sender
            session.scalar(
                select(func.count()).where(Notification.state.in_(WAITING_STATES), Notification.channel == EMAIL)
            )
            or 0
        )
        failed = (
            session.scalar(
                select(func.count())
                .select_from(Request)
                .join(Notification, Notification.id == newest)
                .where(
                    Request.status == Status.AWAITING_CUSTOMER_CONTACT.value,
                    Notification.state.in_((FAILED, NO_TEMPLATE)),
                )
            )
            or 0
        )
    return int(waiting), int(failed)


def read_health(db: Database, *, now: datetime | None = None) -> DeliveryHealth:
    """Why notices wait now: the System Managers' recorded verdicts and the current counts."""
    now = now or utcnow()
    reports = worker_reports(db)
    waiting, failed = current_counts(db)
    fresh = [r for r in reports if now - r.checked_at <= FRESH_FOR]
    latest = reports[0] if reports else None
    healthy = next((r for r in fresh if r.problem is None), None)
    troubled = [r for r in fresh if r.problem is not None]
    if healthy is not None or not troubled:
        shown = healthy or (fresh[0] if fresh else latest)
        return DeliveryHealth(
            problem=None,
            detail="",
            since=None,
            backoff_until=None,
            worker=shown.worker if shown else "",
            checked_at=shown.checked_at if shown else None,
            manager_missing=not fresh and waiting > 0,
            waiting=waiting,
            failed=failed,
            read_at=now,
        )
    worst = troubled[0]
    first_seen = [r.since for r in troubled if r.problem is worst.problem and r.since is not None]
    return DeliveryHealth(
        problem=worst.problem,
        detail=worst.detail,
        since=min(first_seen) if first_seen else worst.checked_at,
        backoff_until=worst.backoff_until if worst.backoff_until and worst.backoff_until > now else None,
        worker=worst.worker,
        checked_at=worst.checked_at,
        manager_missing=False,
        waiting=waiting,
        failed=failed,
        read_at=now,
    )


def make_due_now(db: Database, *, now: datetime | None = None) -> int:
    """ "Retry now": the server's back-off is forgotten and waiting notices scheduled for a later retry become
    due at once; return how many. Without the first, the next cycle would still wait for the back-off's end."""
    now = now or utcnow()
    smtp_backoff.clear(db)
    with db.write() as session:
        result = session.execute(
            update(Notification)
            .where(Notification.state.in_((PENDING, RETRYING)), Notification.next_attempt_at > now)
            .values(next_attempt_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)


# ------------------------------------------------------------------------------------- what staff read


class Remedy(StrEnum):
    """The action that fixes a problem, offered beside the banner's text."""

    SETTINGS = "settings"  # the SMTP server, its password, security or the From address
    RETRY = "retry"  # the server was unreachable or busy: try again now
    NONE = "none"  # nothing one button can fix (failed notices: the E-Mail group's Retry Failed, or phone)


@dataclass(frozen=True)
class HealthMessage:
    """The banner's words: one sentence or two, how serious, and the action that fixes it."""

    text: str
    remedy: Remedy
    error: bool


def _when(moment: datetime | None, now: datetime) -> str:
    """``14:05`` today, ``Nov 28 14:05`` another day, in the workstation's time zone."""
    if moment is None:
        return "an unknown time"
    local, today = moment.astimezone(), now.astimezone()
    return f"{local:%H:%M}" if local.date() == today.date() else f"{local:%b %d %H:%M}"


def _short(detail: str, limit: int = 240) -> str:
    detail = " ".join(detail.split())
    return detail if len(detail) <= limit else detail[: limit - 1] + "…"


def explain(health: DeliveryHealth) -> HealthMessage | None:
    """What the banner says for ``health`` (``None``: nothing to say — notices are flowing)."""
    message = _explain(health)
    return replace(message, text=" ".join(message.text.split())) if message is not None else None


def _explain(health: DeliveryHealth) -> HealthMessage | None:
    now = health.read_at
    waiting = f"{health.waiting} notice(s) waiting." if health.waiting else ""
    since = _when(health.since, now)
    detail = f" ({_short(health.detail)})" if health.detail else ""
    problem = health.problem
    if health.manager_missing:
        last = f"since {_when(health.checked_at, now)}" if health.checked_at else "yet"
        return HealthMessage(
            f"E-mail notices are not being sent: no System Manager has run {last}. {waiting} Tick “Run the "
            "System Manager here” in Settings on one workstation, or start callslip-manager run on the server.",
            Remedy.SETTINGS,
            True,
        )
    if problem is DeliveryProblem.NOT_CONFIGURED:
        return HealthMessage(
            f"E-mail notices are not being sent: no e-mail (SMTP) server is set up. {waiting} "
            "Enter the library's mail server in Settings.",
            Remedy.SETTINGS,
            True,
        )
    if problem is DeliveryProblem.NO_FROM_ADDRESS:
        return HealthMessage(
            f"E-mail notices are not being sent: the library's e-mail address (the From address) is missing. "
            f"{waiting} Enter it in Settings (From address) or on the Customization Manager's Library tab.",
            Remedy.SETTINGS,
            True,
        )
    if problem is DeliveryProblem.AUTH_REFUSED:
        return HealthMessage(
            f"The e-mail server has refused the user name or password since {since}{detail}. {waiting} "
            "Enter the right password in Settings.",
            Remedy.SETTINGS,
            True,
        )
    if problem is DeliveryProblem.TLS_FAILED:
        return HealthMessage(
            f"No secure (TLS) connection to the e-mail server since {since}{detail}. {waiting} "
            "Check the security setting and the server's certificate in Settings.",
            Remedy.SETTINGS,
            True,
        )
    if problem is DeliveryProblem.UNREACHABLE:
        retry = f" Next try at {_when(health.backoff_until, now)}." if health.backoff_until else ""
        return HealthMessage(
            f"The e-mail server has been unreachable since {since}{detail}.{retry} {waiting} "
            "Check the network or the server's name, then Retry now.",
            Remedy.RETRY,
            True,
        )
    if problem is DeliveryProblem.SERVER_BUSY:
        until = f"backing off until {_when(health.backoff_until, now)}" if health.backoff_until else "backing off"
        return HealthMessage(
            f"The e-mail server asked us to wait (since {since}){detail}: {until}. {waiting}",
            Remedy.RETRY,
            True,
        )
    if problem is DeliveryProblem.SESSION_REFUSED:
        return HealthMessage(
            f"The e-mail server refuses to take mail since {since}{detail}. {waiting} Check the server in Settings.",
            Remedy.SETTINGS,
            True,
        )
    if problem is DeliveryProblem.SMS_NOT_CONFIGURED:
        return HealthMessage(
            f"Text message notices are not being sent: SMS is not set up{detail}. {waiting} "
            "Choose and set up a transport in Customization Manager → SMS.",
            Remedy.SETTINGS,
            True,
        )
    if problem is DeliveryProblem.SMS_REFUSED:
        return HealthMessage(
            f"The SMS provider has refused the library's account since {since}{detail}. {waiting} "
            "Check the Account SID, the auth token and the sender in Customization Manager → SMS.",
            Remedy.SETTINGS,
            True,
        )
    if health.failed:
        return HealthMessage(
            f"{health.failed} e-mail notice(s) failed and will not be sent again by themselves: use Retry Failed in "
            "Contact Customers' E-Mail group, or phone or write to these patrons.",
            Remedy.NONE,
            False,
        )
    return None


def short_state(health: DeliveryHealth) -> str:
    """A few words for the status bar: ``server unreachable since 09:12``, ``not configured``, ``ok``."""
    since = _when(health.since, health.read_at)
    words = {
        DeliveryProblem.NOT_CONFIGURED: "no SMTP server set up",
        DeliveryProblem.NO_FROM_ADDRESS: "library e-mail (From) missing",
        DeliveryProblem.UNREACHABLE: f"server unreachable since {since}",
        DeliveryProblem.AUTH_REFUSED: "password refused",
        DeliveryProblem.TLS_FAILED: "TLS problem",
        DeliveryProblem.SERVER_BUSY: f"backing off until {_when(health.backoff_until, health.read_at)}",
        DeliveryProblem.SESSION_REFUSED: "server refuses mail",
        DeliveryProblem.SMS_NOT_CONFIGURED: "SMS not set up",
        DeliveryProblem.SMS_REFUSED: "SMS provider refuses the account",
    }
    if health.manager_missing:
        return "no System Manager running"
    return words[health.problem] if health.problem is not None else "ok"
