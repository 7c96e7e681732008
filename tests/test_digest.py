"""One message for several items (issue 18, part 4): a patron's arrivals close together go out as one e-mail.

Full System Manager cycles on real SQLite files and real PostgreSQL, the real aiosmtpd sink, time driven with
``now=`` as in tests/test_dispatch.py, and a ``callslip-manager`` process killed between the server's acceptance
and the record.
"""

from __future__ import annotations

import collections
import signal
import threading
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import NoticeTemplate, Notification, Tracking
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status
from desktop.services.admin.digest_settings import (
    DigestSettings,
    digest_settings_from,
    load_digest_settings,
    save_digest_settings,
)
from desktop.services.errors import ConcurrentEditError, ValidationError
from desktop.services.notices import outbox
from desktop.services.notices.digest import HOLD_PREFIX, gather
from desktop.services.notices.dispatch import default_lease_seconds, run_cycle
from desktop.services.notices.result_writer import Advance, GroupMember, ResultWriter
from desktop.services.notices.templates import default_templates, validate
from desktop.services.requests.status import SYSTEM_USER
from tests.outbox_support import add_patron, add_request, move, notices, request_status, sink_settings, start_manager
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]

WINDOW = timedelta(minutes=15)


def tracking_notes(db: Database, request_id: int) -> list[tuple[str, str]]:
    with db.read() as session:
        rows = session.execute(
            select(Tracking.to_status, Tracking.note).where(Tracking.request_id == request_id).order_by(Tracking.id)
        )
        return [(str(to), str(note)) for to, note in rows]


def patron_with(db: Database, titles: list[str], *, email: str = "patron@example.org") -> tuple[int, list[int]]:
    """A patron with one request per title, all at Request Sent (on their way)."""
    patron = add_patron(db, email=email)
    return patron, [add_request(db, patron, title=title) for title in titles]


def arrive(db: Database, request_id: int, at: datetime) -> None:
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT, now=at)


def notice_of(db: Database, request_id: int) -> Notification:
    [notice] = notices(db, request_id=request_id)
    return notice


def test_three_arrivals_in_the_window_go_as_one_email_and_a_later_one_alone(
    any_db: Database, smtp_sink: SmtpSink
) -> None:
    settings = sink_settings(smtp_sink)
    _, (a, b, c, late) = patron_with(any_db, ["Book Alpha", "Book Beta", "Book Gamma", "Book Late"])
    t0 = utcnow()
    arrive(any_db, a, t0)
    first = run_cycle(any_db, settings, now=t0 + timedelta(minutes=1))
    assert first.sent == 0 and smtp_sink.messages == []
    held = notice_of(any_db, a)
    assert held.next_attempt_at == t0 + WINDOW and held.last_reply.startswith(HOLD_PREFIX)
    assert first.next_due_at == t0 + WINDOW  # the run loop sleeps until the hold ends
    explanation = outbox.arrival_notices(any_db, [a])[a].explanation  # what Contact Customers shows
    assert explanation == f"waiting to be sent ({HOLD_PREFIX} still on their way, until {t0 + WINDOW:%H:%M} UTC)"
    arrive(any_db, b, t0 + timedelta(minutes=5))
    arrive(any_db, c, t0 + timedelta(minutes=10))
    # "Book Late" is still on its way: the others wait for it until the leader's window ends.
    assert run_cycle(any_db, settings, now=t0 + timedelta(minutes=11)).sent == 0
    assert smtp_sink.messages == []
    summary = run_cycle(any_db, settings, now=t0 + WINDOW + timedelta(seconds=1))
    assert (summary.sent, summary.pending, summary.errors) == (3, 0, [])
    [message] = smtp_sink.messages
    for title in ("Book Alpha", "Book Beta", "Book Gamma"):
        assert title in message.text
    assert "Book Late" not in message.text
    assert message.message["Subject"] == "3 interlibrary loan items have arrived for you"
    message_id = str(message.message["Message-ID"])
    leader = notice_of(any_db, a)
    for request_id in (a, b, c):
        assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
        notice = notice_of(any_db, request_id)
        assert notice.state == "sent" and notice.message_id == message_id
        assert notice.digest_leader_id == (None if request_id == a else leader.id)
        to_status, note = tracking_notes(any_db, request_id)[-1]
        assert to_status == Status.NOTIFIED_VIA_EMAIL.value
        assert f"in one e-mail with 2 other items, Message-ID {message_id}" in note
    # An arrival after the window: nothing else is coming, so it goes at once, in a message of its own.
    arrive(any_db, late, t0 + timedelta(minutes=20))
    after = run_cycle(any_db, settings, now=t0 + timedelta(minutes=20, seconds=5))
    assert after.sent == 1
    single = smtp_sink.messages[-1]
    assert "Book Late" in single.text and "Book Alpha" not in single.text
    assert single.message["Subject"] == "Your interlibrary loan has arrived: Book Late"
    assert notice_of(any_db, late).digest_leader_id is None
    assert "other item" not in tracking_notes(any_db, late)[-1][1]


def test_a_patron_with_one_request_is_not_kept_waiting(any_db: Database, smtp_sink: SmtpSink) -> None:
    _, [only] = patron_with(any_db, ["Only Book"])
    t0 = utcnow()
    arrive(any_db, only, t0)
    summary = run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(seconds=1))
    assert summary.sent == 1
    assert request_status(any_db, only) == Status.NOTIFIED_VIA_EMAIL.value
    assert notice_of(any_db, only).next_attempt_at == t0  # never held


def test_arrivals_with_nothing_else_coming_go_together_at_once(any_db: Database, smtp_sink: SmtpSink) -> None:
    """Waiting gains nothing once no item of the patron's is on its way: the hold is lifted early."""
    _, (a, b) = patron_with(any_db, ["First Book", "Second Book"])
    t0 = utcnow()
    arrive(any_db, a, t0)
    assert run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(minutes=1)).sent == 0  # b is coming
    arrive(any_db, b, t0 + timedelta(minutes=2))
    summary = run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(minutes=2, seconds=1))
    assert summary.sent == 2
    [message] = smtp_sink.messages
    assert "First Book" in message.text and "Second Book" in message.text


def test_the_hold_ends_when_the_item_on_its_way_is_cancelled(any_db: Database, smtp_sink: SmtpSink) -> None:
    _, (a, coming) = patron_with(any_db, ["Held Book", "Cancelled Book"])
    t0 = utcnow()
    arrive(any_db, a, t0)
    assert run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(minutes=1)).sent == 0
    move(any_db, coming, Status.CANCELLED_BY_CUSTOMER)
    summary = run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(minutes=2))
    assert summary.sent == 1
    assert notice_of(any_db, a).last_reply.startswith("250")  # the hold's line is gone with the hold


def test_a_rider_that_left_awaiting_customer_contact_is_not_listed(any_db: Database, smtp_sink: SmtpSink) -> None:
    _, (a, b, coming) = patron_with(any_db, ["Kept Book", "Phoned Book", "Coming Book"])
    t0 = utcnow()
    arrive(any_db, a, t0)
    arrive(any_db, b, t0 + timedelta(minutes=1))
    gather(any_db, now=t0 + timedelta(minutes=2))
    assert notice_of(any_db, b).digest_leader_id == notice_of(any_db, a).id
    move(any_db, b, Status.NOTIFIED_VIA_PHONE)  # staff phoned the patron about this one
    summary = run_cycle(any_db, sink_settings(smtp_sink), now=t0 + WINDOW + timedelta(seconds=1))
    assert summary.sent == 1
    [message] = smtp_sink.messages
    assert "Kept Book" in message.text and "Phoned Book" not in message.text
    assert message.message["Subject"] == "Your interlibrary loan has arrived: Kept Book"
    assert notice_of(any_db, b).state == "cancelled"
    assert request_status(any_db, b) == Status.NOTIFIED_VIA_PHONE.value
    assert request_status(any_db, coming) == Status.REQUEST_SENT.value


def test_a_rider_checked_when_sent_is_not_listed(any_db: Database, smtp_sink: SmtpSink) -> None:
    """The request leaves Awaiting Customer Contact after the claim: the sender's own check drops it."""
    _, (a, b) = patron_with(any_db, ["Kept Book", "Collected Book"])
    t0 = utcnow()
    arrive(any_db, a, t0)
    arrive(any_db, b, t0)
    gather(any_db, now=t0)
    claim = outbox.claim_due(any_db, "test", limit=10, lease_seconds=60, now=t0 + timedelta(seconds=1))
    assert set(claim.ids) == {notice_of(any_db, a).id, notice_of(any_db, b).id}
    assert claim.riders == (notice_of(any_db, b).id,)
    move(any_db, b, Status.CHECKED_OUT)  # the patron collected it meanwhile
    summary = run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(minutes=2))
    assert summary.sent == 1 and summary.cancelled == 1
    [message] = smtp_sink.messages
    assert "Kept Book" in message.text and "Collected Book" not in message.text


def test_leader_cancelled_riders_go_on_their_own(any_db: Database, smtp_sink: SmtpSink) -> None:
    _, (a, b, _coming) = patron_with(any_db, ["Leader Book", "Rider Book", "Coming Book"])
    t0 = utcnow()
    arrive(any_db, a, t0)
    arrive(any_db, b, t0 + timedelta(minutes=1))
    gather(any_db, now=t0 + timedelta(minutes=2))
    assert notice_of(any_db, b).digest_leader_id == notice_of(any_db, a).id
    move(any_db, a, Status.CANCELLED_BY_CUSTOMER)
    summary = run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(minutes=17))
    assert summary.sent == 1
    [message] = smtp_sink.messages
    assert "Rider Book" in message.text and "Leader Book" not in message.text
    assert notice_of(any_db, a).state == "cancelled"
    rider = notice_of(any_db, b)
    assert rider.state == "sent" and rider.digest_leader_id is None
    assert request_status(any_db, b) == Status.NOTIFIED_VIA_EMAIL.value


def test_digest_off_sends_each_arrival_at_once(any_db: Database, smtp_sink: SmtpSink) -> None:
    save_digest_settings(any_db, DigestSettings(), DigestSettings(enabled=False), changed_by="tester")
    _, (a, b, c, _coming) = patron_with(any_db, ["Book One", "Book Two", "Book Three", "Coming Book"])
    t0 = utcnow()
    for request_id in (a, b, c):
        arrive(any_db, request_id, t0)
    summary = run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(seconds=1))
    assert summary.sent == 3
    assert len(smtp_sink.messages) == 3
    assert all(n.digest_leader_id is None for n in notices(any_db))


def test_switching_the_digest_off_lets_held_notices_go(any_db: Database, smtp_sink: SmtpSink) -> None:
    _, (a, _coming) = patron_with(any_db, ["Held Book", "Coming Book"])
    t0 = utcnow()
    arrive(any_db, a, t0)
    assert run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(minutes=1)).sent == 0
    save_digest_settings(any_db, DigestSettings(), DigestSettings(enabled=False), changed_by="tester")
    assert run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(minutes=2)).sent == 1


def test_a_template_without_requests_sends_separate_messages(any_db: Database, smtp_sink: SmtpSink) -> None:
    with any_db.write() as session:
        session.execute(
            update(NoticeTemplate)
            .where(NoticeTemplate.name == "Loan Pickup")
            .values(subject="Arrived: {{ request.title }}", body_text="{{ request.title }} is here.", body_html="")
        )
    _, (a, b, c) = patron_with(any_db, ["Book One", "Book Two", "Book Three"])
    t0 = utcnow()
    for request_id in (a, b, c):
        arrive(any_db, request_id, t0)
    summary = run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(seconds=1))
    assert summary.sent == 3
    assert sorted(str(m.message["Subject"]) for m in smtp_sink.messages) == [
        "Arrived: Book One",
        "Arrived: Book Three",
        "Arrived: Book Two",
    ]
    sent = notices(any_db)
    assert len({n.message_id for n in sent}) == 3
    assert all(n.digest_leader_id is None for n in sent)  # sent alone: riding in no one's message


def test_a_temporary_failure_retries_the_whole_digest(any_db: Database, smtp_sink: SmtpSink) -> None:
    _, (a, b) = patron_with(any_db, ["Book One", "Book Two"], email="busy@example.org")
    t0 = utcnow()
    arrive(any_db, a, t0)
    arrive(any_db, b, t0)
    smtp_sink.behaviour.refuse["busy@example.org"] = "451 4.3.0 mailbox busy"
    first = run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(seconds=1))
    assert (first.sent, first.retrying) == (0, 2)
    assert {n.state for n in notices(any_db)} == {"retrying"}
    assert len({n.message_id for n in notices(any_db)}) == 1  # the rider keeps its leader's Message-ID
    smtp_sink.behaviour.refuse.clear()
    second = run_cycle(any_db, sink_settings(smtp_sink), now=t0 + timedelta(minutes=3))
    assert second.sent == 2
    [message] = smtp_sink.messages
    assert "Book One" in message.text and "Book Two" in message.text


def test_a_crash_between_acceptance_and_record_sends_at_most_one_duplicate_digest(
    any_db: Database, smtp_sink: SmtpSink
) -> None:
    """SIGKILL while the server holds the digest: after the lease the next System Manager sends it again, with the
    same Message-ID, and records it for every item once."""
    _, requests = patron_with(any_db, ["Book One", "Book Two", "Book Three"])
    now = utcnow()
    for request_id in requests:
        arrive(any_db, request_id, now)
    holding, release = threading.Event(), threading.Event()

    def hold_the_first(_sender: str) -> None:
        holding.set()
        release.wait(60)

    smtp_sink.behaviour.before_accepting = hold_the_first
    worker = start_manager(any_db.url.render_as_string(hide_password=False), smtp_sink, "run", "--once")
    try:
        assert holding.wait(60), "the manager never sent the digest"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=30)
        release.set()
    assert worker.returncode == -signal.SIGKILL
    smtp_sink.behaviour.before_accepting = None
    assert {n.state for n in notices(any_db)} == {"pending"}  # the server accepted it; nothing was recorded
    lease_end = max(n.lease_until for n in notices(any_db) if n.lease_until is not None)
    assert lease_end <= utcnow() + timedelta(seconds=default_lease_seconds(Settings()))
    after = run_cycle(any_db, sink_settings(smtp_sink), now=lease_end + timedelta(seconds=1))
    assert (after.sent, after.errors) == (3, [])
    received = collections.Counter(str(m.message["Message-ID"]) for m in smtp_sink.messages)
    assert len(received) == 1 and list(received.values()) == [2]  # one duplicate digest, the same Message-ID
    [message_id] = received
    for message in smtp_sink.messages:
        assert all(title in message.text for title in ("Book One", "Book Two", "Book Three"))
    for request_id in requests:
        notice = notice_of(any_db, request_id)
        assert notice.state == "sent" and notice.message_id == message_id  # traceable to both copies
        notified = [t for t, _ in tracking_notes(any_db, request_id) if t == Status.NOTIFIED_VIA_EMAIL.value]
        assert len(notified) == 1


def test_two_system_managers_at_once_send_one_digest_per_patron(any_db: Database, smtp_sink: SmtpSink) -> None:
    """Two managers gather and claim at the same moment: each patron still gets exactly one message listing all
    three items, and each patron's notices have exactly one leader."""
    patrons = 6
    t0 = utcnow()
    for n in range(patrons):
        _, requests = patron_with(any_db, [f"P{n} Book {i}" for i in range(3)], email=f"p{n}@example.org")
        for request_id in requests:
            arrive(any_db, request_id, t0)
    barrier = threading.Barrier(2)
    problems: list[BaseException] = []
    url = any_db.url.render_as_string(hide_password=False)

    def manager(name: str) -> None:
        db = Database(url)
        try:
            barrier.wait(30)
            run_cycle(db, sink_settings(smtp_sink), worker=name, now=t0 + timedelta(seconds=1), batch_size=2)
        except BaseException as exc:
            problems.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=manager, args=(f"manager-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert problems == []
    assert len(smtp_sink.messages) == patrons
    for message in smtp_sink.messages:
        [to] = message.rcpt_tos
        n = to.removeprefix("p").removesuffix("@example.org")
        assert all(f"P{n} Book {i}" in message.text for i in range(3))
    by_patron: dict[int | None, list[Notification]] = collections.defaultdict(list)
    for notice in notices(any_db):
        by_patron[notice.patron_id].append(notice)
    for group in by_patron.values():
        leaders = [n for n in group if n.digest_leader_id is None]
        assert len(leaders) == 1
        assert all(n.digest_leader_id == leaders[0].id for n in group if n is not leaders[0])
        assert {n.state for n in group} == {"sent"}


def test_concurrent_gather_passes_make_one_leader(any_db: Database) -> None:
    """Gather passes racing while arrivals keep coming: never two leaders for one patron's window, never a rider
    of a rider (which no claim would carry)."""
    _, requests = patron_with(any_db, [f"Book {i}" for i in range(8)])
    t0 = utcnow()
    url = any_db.url.render_as_string(hide_password=False)
    barrier = threading.Barrier(3)
    problems: list[BaseException] = []

    def gatherer() -> None:
        db = Database(url)
        try:
            barrier.wait(30)
            for _ in range(10):
                gather(db, now=t0 + timedelta(minutes=1))
        except BaseException as exc:
            problems.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=gatherer) for _ in range(2)]
    for thread in threads:
        thread.start()
    barrier.wait(30)
    for request_id in requests:
        arrive(any_db, request_id, t0)
    for thread in threads:
        thread.join(120)
    assert problems == []
    gather(any_db, now=t0 + timedelta(minutes=1))
    found = notices(any_db)
    leaders = [n for n in found if n.digest_leader_id is None]
    assert len(leaders) == 1
    assert all(n.digest_leader_id == leaders[0].id for n in found if n is not leaders[0])


def test_a_group_record_is_all_or_nothing(any_db: Database) -> None:
    """One message's result for the leader and its riders: if one rider's lease was taken over, nothing is
    written (no request moves, no history line); with every lease held, everything is, in one transaction."""
    _, (a, b) = patron_with(any_db, ["Book One", "Book Two"])
    t0 = utcnow()
    arrive(any_db, a, t0)
    arrive(any_db, b, t0)
    gather(any_db, now=t0)
    claim = outbox.claim_due(any_db, "test", limit=10, lease_seconds=60, now=t0)
    leader, rider = notice_of(any_db, a), notice_of(any_db, b)
    assert set(claim.ids) == {leader.id, rider.id}

    def members() -> list[GroupMember]:
        return [
            GroupMember(notice.id, "sent", "sent", "250 OK", {"attempts": 1, "message_id": "<m@x>", "sent_at": t0},
                        Advance(request_id, Status.AWAITING_CUSTOMER_CONTACT, Status.NOTIFIED_VIA_EMAIL,
                                SYSTEM_USER, "in one e-mail"))
            for notice, request_id in ((leader, a), (rider, b))
        ]  # fmt: skip

    with any_db.write() as session:  # another System Manager took the rider over
        session.execute(update(Notification).where(Notification.id == rider.id).values(lease_owner="other#1"))
    writer = ResultWriter(any_db)
    try:
        assert writer.record_group(claim.token, members(), worker="test", now=t0) is False
        assert notice_of(any_db, a).state == "pending" and request_status(any_db, a) == Status.AWAITING_CUSTOMER_CONTACT
        assert outbox.notice_history(any_db, leader.id) == []
        with any_db.write() as session:
            session.execute(update(Notification).where(Notification.id == rider.id).values(lease_owner=claim.token))
        assert writer.record_group(claim.token, members(), worker="test", now=t0) is True
    finally:
        writer.close()
    for request_id in (a, b):
        assert notice_of(any_db, request_id).state == "sent"
        assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
        assert tracking_notes(any_db, request_id)[-1] == (Status.NOTIFIED_VIA_EMAIL.value, "in one e-mail")


def test_a_save_renders_the_several_items_part_of_a_template() -> None:
    """The shipped templates pass; a mistake only the several-items branch reaches is refused before saving."""
    shipped = default_templates()
    for name in ("Loan Pickup", "Article Pickup"):
        assert validate(shipped[name]) == []
    broken = replace(
        shipped["Loan Pickup"],
        body_text="{% if requests|length > 1 %}{% for item in requests %}{{ item['titel'] }}{% endfor %}"
        "{% else %}{{ request.title }}{% endif %}",
    )
    [problem] = validate(broken)
    assert "several items" in str(problem) and problem.part == "body_text"


# ------------------------------------------------------------------------------------------------ settings


def test_digest_settings_default_on_and_saved_for_everyone(any_db: Database) -> None:
    assert load_digest_settings(any_db) == DigestSettings(enabled=True, window_minutes=15)
    saved = save_digest_settings(any_db, DigestSettings(), DigestSettings(window_minutes=30), changed_by="ann")
    assert saved.window_minutes == 30 and load_digest_settings(any_db) == saved


def test_digest_settings_refuse_a_bad_window_and_a_concurrent_edit(any_db: Database) -> None:
    with pytest.raises(ValidationError, match="between 1 and 120 minutes"):
        save_digest_settings(any_db, DigestSettings(), DigestSettings(window_minutes=0), changed_by="ann")
    with pytest.raises(ValidationError):
        save_digest_settings(any_db, DigestSettings(), DigestSettings(window_minutes=121), changed_by="ann")
    assert load_digest_settings(any_db) == DigestSettings()  # nothing saved
    save_digest_settings(any_db, DigestSettings(), DigestSettings(window_minutes=20), changed_by="bob")
    with pytest.raises(ConcurrentEditError, match="bob"):
        save_digest_settings(any_db, DigestSettings(), DigestSettings(enabled=False), changed_by="ann")
    assert load_digest_settings(any_db) == DigestSettings(window_minutes=20)


def test_damaged_digest_settings_fall_back_to_the_defaults() -> None:
    assert digest_settings_from("nonsense") == DigestSettings()
    assert digest_settings_from({"enabled": "yes", "window_minutes": "x"}) == DigestSettings()
    assert digest_settings_from({"enabled": False, "window_minutes": 500}) == DigestSettings(False, 120)
