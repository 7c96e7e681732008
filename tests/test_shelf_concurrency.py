"""Three System Manager processes run the hold shelf's cycle at the same moment: every reminder and every expiry
notice reaches the SMTP sink exactly once, every expired request has one Tracking line."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from desktop.db.engine import Database
from desktop.db.models import ContactPoint, Notification, Patron, PickupLocation, Request, Tracking
from desktop.domain.shelf import ShelfPolicy
from desktop.domain.statuses import Status
from tests.outbox_support import ROOT, manager_env
from tests.smtp_sink import SmtpSink, smtp_sink
from tests.test_shelf_reminders import set_shelf

__all__ = ["smtp_sink"]

NOTIFIED = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
#: A cycle of one System Manager at ``now`` (ISO), as its own process: the real run_cycle, the time moved.
WORKER = """
import sys
from datetime import datetime
from desktop.config import load_settings
from desktop.db.engine import Database
from desktop.services.notices.dispatch import run_cycle
db = Database(sys.argv[1])
summary = run_cycle(db, load_settings(), now=datetime.fromisoformat(sys.argv[2]), worker=sys.argv[3])
print(summary.sent, summary.reminders, summary.expired, "|".join(summary.errors))
"""


def shelve_many(db: Database, count: int, hold_days: int) -> None:
    with db.write() as session:
        pickup = PickupLocation(code="SHELF", name="Shelf desk", hold_days=hold_days)
        session.add(pickup)
        session.flush()
        for n in range(count):
            patron = Patron(username=f"shelf{n}", first_name="Ada", last_name=f"Shelf{n}", pickup_location_id=pickup.id)
            address = f"shelf{n}@example.org"
            patron.contact_points.append(ContactPoint(kind="email", value=address, normalized=address, is_primary=True))
            session.add(patron)
            session.flush()
            request = Request(transaction_number=900_000 + n, patron_id=patron.id, loan_title=f"Book {n}",
                              status=Status.NOTIFIED_VIA_EMAIL.value, status_changed_at=NOTIFIED)  # fmt: skip
            session.add(request)
            session.flush()
            session.add(Tracking(request_id=request.id, to_status=request.status, changed_by="t", changed_at=NOTIFIED))


def run_three(db: Database, sink: SmtpSink, now: datetime) -> list[str]:
    url = db.url.render_as_string(hide_password=False)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, now.isoformat(), f"w{n}"],
            env=manager_env(sink),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    outputs = [p.communicate(timeout=240) for p in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    return [out.strip() for out, _ in outputs]


def check_once(db: Database, sink: SmtpSink, template: str, count: int) -> None:
    with db.read() as session:
        sent = session.scalar(
            select(func.count()).where(Notification.template_name == template, Notification.state == "sent")
        )
    with sink.lock:
        ids = [str(m.message["Message-ID"]) for m in sink.messages]
    assert sent == count and len(ids) == len(set(ids))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_three_processes_send_each_reminder_and_expiry_once(
    backend: str, sqlite_db: Database, request: pytest.FixtureRequest, smtp_sink: SmtpSink
) -> None:
    db: Database = sqlite_db if backend == "sqlite" else request.getfixturevalue("pg_db")
    count = 40
    shelve_many(db, count, hold_days=10)
    set_shelf(db, ShelfPolicy())  # one reminder on the 9th, the hold ends on the 11th
    outputs = run_three(db, smtp_sink, datetime(2026, 12, 9, 10, 0, tzinfo=UTC))
    assert sum(int(o.split()[1]) for o in outputs) == count, outputs  # reminders created once in all
    assert len(smtp_sink.messages) == count
    check_once(db, smtp_sink, "Loan Pickup Reminder", count)
    outputs = run_three(db, smtp_sink, datetime(2026, 12, 12, 1, 0, tzinfo=UTC))
    assert sum(int(o.split()[2]) for o in outputs) == count, outputs  # expired once in all
    assert len(smtp_sink.messages) == 2 * count
    check_once(db, smtp_sink, "Pickup Expired", count)
    with db.read() as session:
        lines = session.scalar(select(func.count()).where(Tracking.to_status == Status.AWAITING_RETURN_TO_LENDER.value))
    assert lines == count
