"""Helpers for the System Manager tests: patrons and requests on a real database, bulk arrivals, settings that
point at the SMTP sink, and running ``callslip-manager`` in worker processes."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import (
    ContactPoint,
    Location,
    Notification,
    Patron,
    PatronChannelPreference,
    PickupLocation,
    Request,
    Tracking,
)
from desktop.domain.channels import NoticeEvent
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status
from desktop.services.notices.outbox import arrival_dedupe_key, arrival_template
from desktop.services.requests.status import change_status
from tests.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parents[1]
FROM = "ill@library.example.org"
_numbers = itertools.count(1)


def sink_settings(sink: SmtpSink, **changes: object) -> Settings:
    """Settings that send to ``sink`` with a short timeout."""
    base = Settings(staff_name="tester", smtp_host=sink.host, smtp_port=sink.port, smtp_from=FROM, smtp_timeout=5.0)
    return base.with_changes(**changes) if changes else base


def add_patron(
    db: Database,
    *,
    email: str | None = "patron@example.org",
    method: str = "E-Mail",
    delivery: str = "Hold for Pickup",
    pickup_delay: int | None = None,
) -> int:
    """A patron (with a primary e-mail unless ``email`` is None); a pickup location with ``pickup_delay``."""
    n = next(_numbers)
    with db.write() as session:
        pickup_id = None
        if pickup_delay is not None:
            pickup = PickupLocation(code=f"P{n}", name=f"Desk {n}", routing_delay_minutes=pickup_delay)
            session.add(pickup)
            session.flush()
            pickup_id = pickup.id
        patron = Patron(username=f"user{n}-{os.getpid()}", first_name="Ada", last_name=f"Tester{n}",
                        notification_method=method, delivery_method=delivery, pickup_location_id=pickup_id)  # fmt: skip
        if email:
            patron.contact_points.append(
                ContactPoint(kind="email", value=email, normalized=email.lower(), is_primary=True)
            )
        session.add(patron)
        session.flush()
        return patron.id


def add_sms_patron(db: Database, number: str | None, *, email: str | None = "patron@example.org", carrier: str = "",
                   channels: str = "SMS>E-Mail", location: str = "Cell",
                   pickup_delay: int | None = None) -> int:  # fmt: skip
    """A patron whose "Item ready for pickup" preference is ``channels`` (SMS first by default), with ``number``
    (E.164) as their primary phone at ``location`` and ``carrier`` as their mobile carrier."""
    patron_id = add_patron(db, email=email, pickup_delay=pickup_delay)
    with db.write() as session:
        patron = session.get(Patron, patron_id)
        assert patron is not None
        patron.sms_carrier = carrier
        if number:
            where = session.scalar(select(Location.id).where(Location.name == location))
            patron.contact_points.append(ContactPoint(kind="phone", value=number, normalized=number,
                                                      location_id=where, is_primary=True, position=1))  # fmt: skip
        session.add(PatronChannelPreference(patron_id=patron_id, event=NoticeEvent.READY_FOR_PICKUP.value,
                                            channels=channels))  # fmt: skip
    return patron_id


def add_request(db: Database, patron_id: int, *, status: Status = Status.REQUEST_SENT, request_type: str = "Loan",
                title: str = "Notes on the Analytical Engine") -> int:  # fmt: skip
    """A request at ``status`` (created directly, with its Tracking row, no notice)."""
    with db.write() as session:
        tn = (session.scalar(select(func.max(Request.transaction_number))) or 500_000) + 1
        request = Request(transaction_number=tn, patron_id=patron_id, request_type=request_type, loan_title=title,
                          photo_article_title=title, photo_journal_title="Journal", status=status.value)  # fmt: skip
        session.add(request)
        session.flush()
        session.add(Tracking(request_id=request.id, from_status=None, to_status=status.value, changed_by="tester"))
        return request.id


def move(db: Database, request_id: int, target: Status, *, by: str = "tester", now: datetime | None = None) -> None:
    """Change a request's status the way every window does (through change_status)."""
    with db.write() as session:
        request = session.get(Request, request_id)
        assert request is not None
        change_status(session, request, target, by, now=now)


def notices(db: Database, **where: object) -> list[Notification]:
    """Every notice (detached, fully loaded copies), filtered by column values, oldest first."""
    with db.read() as session:
        stmt = select(Notification).order_by(Notification.id)
        for column, value in where.items():
            stmt = stmt.where(getattr(Notification, column) == value)
        found = list(session.scalars(stmt))
        session.expunge_all()  # keep the loaded values: the read session's rollback would expire them
        return found


def request_status(db: Database, request_id: int) -> str:
    """The request's status now."""
    with db.read() as session:
        request = session.get(Request, request_id)
        assert request is not None
        return request.status


def bulk_arrivals(db: Database, count: int, *, domain: str = "example.org") -> list[int]:
    """``count`` e-mail patrons with one request each at Awaiting Customer Contact and its pending notice,
    written with executemany (a 2,000-notice queue in well under a second). Returns the notice ids."""
    now = utcnow()
    with db.write() as session:
        base = (session.scalar(select(func.max(Patron.id))) or 0) + 1
        rbase = (session.scalar(select(func.max(Request.id))) or 0) + 1
        tbase = (session.scalar(select(func.max(Tracking.id))) or 0) + 1
        tn0 = (session.scalar(select(func.max(Request.transaction_number))) or 700_000) + 1
        patrons, points, requests, tracking, outbox = [], [], [], [], []
        for i in range(count):
            pid, rid, tid = base + i, rbase + i, tbase + i
            address = f"patron{pid}@{domain}"
            patrons.append({"id": pid, "username": f"bulk{pid}", "first_name": "Bulk", "last_name": f"Patron {pid}",
                            "notification_method": "E-Mail", "delivery_method": "Hold for Pickup",
                            "created_at": now, "updated_at": now, "version_id": 1})  # fmt: skip
            points.append({"patron_id": pid, "kind": "email", "value": address, "normalized": address,
                           "is_primary": True, "position": 0, "extension": "", "created_at": now})  # fmt: skip
            requests.append({"id": rid, "transaction_number": tn0 + i, "patron_id": pid, "request_type": "Loan",
                             "loan_title": f"Book {i}", "status": Status.AWAITING_CUSTOMER_CONTACT.value,
                             "status_changed_at": now, "transaction_date": now, "updated_at": now,
                             "version_id": 1})  # fmt: skip
            tracking.append({"id": tid, "request_id": rid, "from_status": Status.IN_TRANSIT_TO_PICKUP.value,
                             "to_status": Status.AWAITING_CUSTOMER_CONTACT.value, "changed_by": "System",
                             "changed_at": now, "note": ""})  # fmt: skip
            template = arrival_template("Loan")
            outbox.append({"dedupe_key": arrival_dedupe_key(rid, template, tid), "channel": "email",
                           "template_name": template, "request_id": rid, "patron_id": pid, "tracking_id": tid,
                           "state": "pending", "to_address": address, "next_attempt_at": now, "created_at": now,
                           "updated_at": now, "attempts": 0})  # fmt: skip
        session.execute(insert(Patron), patrons)
        session.execute(insert(ContactPoint), points)
        session.execute(insert(Request), requests)
        session.execute(insert(Tracking), tracking)
        session.execute(insert(Notification), outbox)
        if db.backend == "postgresql":
            for table in ("patrons", "requests", "tracking"):
                session.connection().exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
    with db.read() as session:
        return list(session.scalars(select(Notification.id).where(Notification.state == "pending")))


def manager_env(sink: SmtpSink, **extra: str) -> dict[str, str]:
    """Environment for a ``callslip-manager`` worker process sending to ``sink``."""
    env = dict(os.environ)
    env.update({"CALLSLIP_SMTP_HOST": sink.host, "CALLSLIP_SMTP_PORT": str(sink.port), "CALLSLIP_SMTP_FROM": FROM,
                "CALLSLIP_SMTP_TIMEOUT": "10", "PYTHONPATH": str(ROOT),
                # A headless worker has no OS keyring: the null backend answers "no password" for the database.
                "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"})  # fmt: skip
    env.update(extra)
    return env


def start_manager(url: str, sink: SmtpSink, *args: str, **extra: str) -> subprocess.Popen[str]:
    """``callslip-manager --database URL <args>`` as a separate process."""
    return subprocess.Popen(
        [sys.executable, "-m", "desktop.manager", "--database", url, *args],
        env=manager_env(sink, **extra),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a PostgreSQL ``EXPLAIN (FORMAT JSON)`` plan, outermost first (for the plan tests)."""
    return [plan, *(node for child in plan.get("Plans", []) for node in plan_nodes(child))]
