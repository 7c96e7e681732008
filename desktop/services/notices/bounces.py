"""What a bounce does: the notice becomes *bounced*, the address is flagged, the request goes back to the desk.

A report from the bounce mailbox (parsed by :mod:`desktop.services.notices.bounce_parsing`) is matched to the notice it
is about, then acted on in ONE transaction:

* **Matching.** By the per-notice return address's token when the library uses VERP
  (``ill+n-<notice id>-<check>@library…``, see :func:`verp_token`): the check digits are a hash of this
  database's installation id and the notice's dedupe key, so a report about another installation's notice 42
  matches nothing. Without a token, by the returned message's ``Message-ID`` (unique across installations since
  migration 0007). Either way the failed recipient must be one the notice was sent to: a report naming
  someone else (a forwarded address, a bounce quoting a help-desk address) changes nothing.
* **A hard bounce** (5.x.x) marks the notice ``bounced`` (the status and diagnostic in its history and its last
  reply), flags every e-mail contact point with that address "bounced on <date>: 550 5.1.1 user unknown", and
  moves a request still at Customer Notified via E-Mail back to Awaiting Customer Contact with the reason.
  Its new arrival notice is not e-mailed to the flagged address (``outbox.bounced_reason``): Contact Customers
  shows the request in the patron's Phone group (Mail when there is no phone) with the reason.
* **A soft bounce** (4.x.x: mailbox full) is counted on the contact point and written in the notice's
  history; the second one (until staff clear the flag) acts as a hard bounce.
* **A digest** (one message carrying several notices: a leader and riders with ``digest_leader_id``, all with the
  leader's Message-ID, :mod:`desktop.services.notices.digest`) is matched to its leader, whichever of them the
  Message-ID lookup finds first; a bounce then acts on every notice the message carried: each is marked bounced
  with its own history line, each request still at Customer Notified via E-Mail goes back to the desk, so each
  falls back on its own (:mod:`desktop.services.notices.fallback`). The report row is one, so a second reading
  of the same report changes nothing.
* **A hold-shelf reminder or "hold ended" notice** that bounces is marked bounced and its address flagged, but its
  request stays where it is (the item was announced already; moving it back to the desk would restart its hold):
  the reminder moves on to the patron's next "Pickup reminder" channel instead (fallback).
* Every report acted on is a row of ``bounce_reports`` keyed by the report's own Message-ID: when two System
  Managers read the same mailbox, the second insert fails and its whole transaction is rolled back, so a
  report is never counted twice.

Staff clear the flag (:func:`clear_flag`) after fixing the address; changing the address's text on the Contact
Card makes a new contact point, which starts unflagged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from desktop.db.engine import Database
from desktop.db.models import BounceReport as BounceRow
from desktop.db.models import ContactPoint, Notification, NotificationAttempt, Patron, Request, SystemSetting
from desktop.domain.clock import utcnow
from desktop.domain.contacts import email_key, person_name
from desktop.domain.statuses import Status
from desktop.services.errors import ValidationError
from desktop.services.notices.bounce_parsing import BounceKind, BounceReport, FailedRecipient, parse_bounce
from desktop.services.notices.mail_addresses import AddressError, parse_address_list
from desktop.services.notices.outbox import BOUNCED, BOUNCED_PREFIX, SENT, flag_text
from desktop.services.notices.shelf import is_shelf_notice

#: Who the Tracking line of a request moved back by a bounce names.
BOUNCE_ACTOR = "System Manager (bounce)"
#: Soft bounces that make a flag (the first is only counted).
SOFT_BOUNCES_TO_FLAG = 2


class Outcome(StrEnum):
    """What handling one report did (the cycle counts each)."""

    FLAGGED = "flagged"  # a hard bounce, or a repeated soft one: notice bounced, address flagged
    COUNTED = "counted"  # a first soft bounce: counted on the address, written in the notice's history
    NOT_A_FAILURE = "not_a_failure"  # delayed, out of office, a success report, not a bounce: handled, no effect
    UNMATCHED = "unmatched"  # a failure no notice of this database matches: left in the mailbox
    DUPLICATE = "duplicate"  # already handled (by this or another System Manager)
    MALFORMED = "malformed"  # unreadable: left in the mailbox


@dataclass(frozen=True)
class Handled:
    """The result of :func:`handle_bounce`.

    Attributes:
        handled: the message may be marked handled in the mailbox (everything but UNMATCHED and MALFORMED).
        detail: one line for the log and the cycle's summary.
    """

    outcome: Outcome
    detail: str
    notice_id: int | None = None
    address: str = ""

    @property
    def handled(self) -> bool:
        """Whether the mailbox message is done with (moved/flagged) or must stay for a person to look at."""
        return self.outcome not in (Outcome.UNMATCHED, Outcome.MALFORMED)


def verp_token(notice_id: int, dedupe_key: str, installation_id: str) -> str:
    """``<notice id>-<8 hex>``: the part after ``+n-`` of a notice's return address.

    The hash ties the token to this database (installation id) and this notice (dedupe key), so nobody can
    flag an address by mailing a made-up token, and another installation's notice ids never match.
    """
    digest = hashlib.sha256(f"verp\0{installation_id}\0{dedupe_key}".encode()).hexdigest()[:8]
    return f"{notice_id}-{digest}"


def verp_address(sender: str, token: str) -> str:
    """``ill@library.edu`` → ``ill+n-<token>@library.edu`` (sub-addressing; the envelope sender only)."""
    local, at, domain = sender.rpartition("@")
    if not at or not local:
        return sender
    return f"{local}+n-{token}@{domain}"


def _report_key(report: BounceReport, data: bytes) -> str:
    return (report.message_id or f"sha256:{hashlib.sha256(data).hexdigest()}")[:300]


def _recipients(notice: Notification) -> set[str]:
    keys: set[str] = set()
    for text in (notice.to_address, notice.cc, notice.bcc):
        try:
            keys.update(email_key(a.addr_spec) for a in parse_address_list(text))
        except AddressError:
            keys.add(email_key(text))
    keys.discard("")
    return keys


def _installation_id(session: Session) -> str:
    raw = session.scalar(select(SystemSetting.value).where(SystemSetting.key == "installation_id"))
    try:
        return str(json.loads(raw)) if raw else ""
    except ValueError:
        return str(raw)


def _find_notice(session: Session, report: BounceReport) -> Notification | None:
    """The notice the report is about; for a digest, its leader (a rider shares the leader's Message-ID)."""
    notice = _matched_notice(session, report)
    if notice is not None and notice.digest_leader_id is not None:
        leader = session.get(Notification, notice.digest_leader_id)
        return leader if leader is not None and leader.message_id == notice.message_id else notice
    return notice


def _carried(session: Session, leader: Notification) -> list[Notification]:
    """Every notice one message carried: the leader, then the riders that went with it (same Message-ID)."""
    if leader.message_id is None:
        return [leader]
    riders = session.scalars(
        select(Notification)
        .where(Notification.digest_leader_id == leader.id, Notification.message_id == leader.message_id)
        .order_by(Notification.id)
    )
    return [leader, *riders]


def _matched_notice(session: Session, report: BounceReport) -> Notification | None:
    if report.verp_token:
        number, _, _check = report.verp_token.partition("-")
        notice = session.get(Notification, int(number)) if number.isdigit() and len(number) < 12 else None
        if notice is not None and verp_token(notice.id, notice.dedupe_key, _installation_id(session)) == (
            report.verp_token
        ):
            return notice
    if report.original_message_id:
        return session.scalars(
            select(Notification).where(Notification.message_id == report.original_message_id).limit(1)
        ).first()
    return None


def _failed_for(notice: Notification, report: BounceReport) -> FailedRecipient | None:
    sent_to = _recipients(notice)
    return next((r for r in report.recipients if email_key(r.address) in sent_to), None)


def handle_bounce(db: Database, data: bytes, *, worker: str = "", now: datetime | None = None) -> Handled:
    """Parse one message from the bounce mailbox and act on it (see the module docstring). Never raises for
    bad input; a database error propagates (the message stays in the mailbox for the next cycle)."""
    report = parse_bounce(data)
    if report.kind is BounceKind.MALFORMED:
        return Handled(Outcome.MALFORMED, f"left: {report.reason}")
    if not report.kind.is_failure:
        what = report.reason or f"{report.kind.value.replace('_', ' ')}: not a failure"
        return Handled(Outcome.NOT_A_FAILURE, what, report.notice_id)
    now = now or utcnow()
    try:
        with db.write() as session:
            return _act(session, report, _report_key(report, data), worker, now)
    except IntegrityError:  # another System Manager recorded this report first: its whole effect is theirs
        return Handled(Outcome.DUPLICATE, "already handled by another System Manager")


def _act(session: Session, report: BounceReport, key: str, worker: str, now: datetime) -> Handled:
    if session.scalar(select(BounceRow.id).where(BounceRow.report_key == key)) is not None:
        return Handled(Outcome.DUPLICATE, "already handled")
    notice = _find_notice(session, report)
    if notice is None:
        failed_to = ", ".join(r.address for r in report.recipients)
        return Handled(Outcome.UNMATCHED, f"left: a bounce for {failed_to} matches no notice of this database")
    failed = _failed_for(notice, report)
    if failed is None:
        named = ", ".join(r.address for r in report.recipients)
        return Handled(
            Outcome.UNMATCHED,
            f"left: the bounce names {named}, but notice {notice.id} went to {notice.to_address}",
            notice.id,
        )
    summary = failed.summary()
    hard = failed.hard
    points = list(
        session.scalars(
            select(ContactPoint).where(
                ContactPoint.kind == "email", ContactPoint.normalized == email_key(failed.address)
            )
        )
    )
    flag = hard
    for point in points:
        if not hard and point.bounced_at is None:
            point.soft_bounces = (point.soft_bounces or 0) + 1
            flag = flag or point.soft_bounces >= SOFT_BOUNCES_TO_FLAG
    reason = summary if hard else f"{summary} (soft bounce, {SOFT_BOUNCES_TO_FLAG} or more times)"
    if flag:
        for point in points:
            if point.bounced_at is None:
                point.bounced_at = now
                point.bounce_reason = reason[:500]
    carried = _carried(session, notice)
    together = f" (one message with {len(carried)} items)" if len(carried) > 1 else ""
    for each in carried:  # a digest: every item the message carried bounced with it
        session.add(
            NotificationAttempt(
                notification_id=each.id,
                attempted_at=now,
                worker=worker,
                outcome=BOUNCED if flag else "soft_bounce",
                reply=f"{'bounced' if flag else 'soft bounce'} for {failed.address}: {summary}{together}",
            )
        )
        if flag and each.state == SENT:
            each.state = BOUNCED
            each.last_reply = f"bounced: {summary}"[:2000]
            each.updated_at = now
    session.add(
        BounceRow(
            report_key=key,
            notice_id=notice.id,
            address=failed.address[:300],
            kind=report.kind.value,
            status=failed.status[:20],
            diagnostic=summary[:500],
            received_at=now,
            handled_by=worker[:200],
        )
    )
    session.flush()
    moved = sum(_send_back(session, each, failed.address, reason, now) for each in carried) if flag else 0
    if not flag:
        return Handled(Outcome.COUNTED, f"soft bounce for {failed.address} counted: {summary}", notice.id,
                       failed.address)  # fmt: skip
    back = ""
    if moved:
        back = "; its request is" if len(carried) == 1 else f"; {moved} of its {len(carried)} requests are"
        back += " back at Awaiting Customer Contact"
    return Handled(Outcome.FLAGGED, f"{failed.address} flagged: {summary}{back}", notice.id, failed.address)


def _send_back(session: Session, notice: Notification, address: str, reason: str, now: datetime) -> bool:
    """A request the patron was "notified" of by the bounced e-mail goes back to the desk, with the reason."""
    from desktop.services.requests.status import change_status  # status imports outbox, which this module imports

    if notice.request_id is None or is_shelf_notice(notice.dedupe_key):
        return False  # a reminder's bounce: the item was announced already; the reminder falls back instead
    request = session.get(Request, notice.request_id)
    if request is None or request.status != Status.NOTIFIED_VIA_EMAIL.value:
        return False  # picked up, cancelled, or already moved on by staff: nothing to undo
    change_status(session, request, Status.AWAITING_CUSTOMER_CONTACT, BOUNCE_ACTOR, now=now,
                  note=f"{BOUNCED_PREFIX}: {address}: {reason}"[:500])  # fmt: skip
    return True


# ------------------------------------------------------------------------------------------- the flag


@dataclass(frozen=True)
class BouncedAddress:
    """One flagged e-mail address with its patron (a row of the Bounced addresses list)."""

    contact_id: int
    patron_id: int
    patron_name: str
    username: str
    address: str
    bounced_at: datetime
    reason: str

    @property
    def flag(self) -> str:
        """``bounced on <date>: <reason>``."""
        return flag_text(self.bounced_at, self.reason)


def bounced_addresses(db: Database) -> list[BouncedAddress]:
    """Every flagged e-mail address with its patron, newest bounce first."""
    with db.read() as session:
        rows = session.execute(
            select(
                ContactPoint.id,
                Patron.id,
                Patron.first_name,
                Patron.last_name,
                Patron.username,
                ContactPoint.value,
                ContactPoint.bounced_at,
                ContactPoint.bounce_reason,
            )
            .join(Patron, Patron.id == ContactPoint.patron_id)
            .where(ContactPoint.kind == "email", ContactPoint.bounced_at.is_not(None))
            .order_by(ContactPoint.bounced_at.desc(), ContactPoint.id)
        ).all()
    return [
        BouncedAddress(cid, pid, person_name(first, last, username), username, value, bounced_at or utcnow(), reason)
        for cid, pid, first, last, username, value, bounced_at, reason in rows
    ]


def clear_flag(db: Database, contact_ids: Sequence[int]) -> int:
    """Clear the bounce flag (and the soft-bounce count) of these contact points; returns how many were flagged.

    Staff do this after fixing the address with the patron. Ids that are gone or not flagged are skipped.

    Raises:
        ValidationError: no contact point was given.
    """
    if not contact_ids:
        raise ValidationError("Choose the address whose bounce flag to clear.")
    cleared = 0
    with db.write() as session:
        for point in session.scalars(select(ContactPoint).where(ContactPoint.id.in_(list(contact_ids)))):
            cleared += point.bounced_at is not None or point.soft_bounces > 0
            point.bounced_at = None
            point.bounce_reason = ""
            point.soft_bounces = 0
            point.patron.updated_at = utcnow()  # other windows see the patron changed
    return cleared
