"""Text messages through the outbox (issue 18): SMS-first patrons' arrivals become texts, sent by the System
Manager through the local Twilio server or an e-mail-to-SMS gateway into the real SMTP sink, on real SQLite files
and real PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from desktop.config import Settings
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
from desktop.domain.channels import NoticeEvent
from desktop.domain.clock import utcnow
from desktop.domain.sms_text import measure
from desktop.domain.statuses import Status
from desktop.services.admin.shelf_settings import load_shelf_settings, save_shelf_settings
from desktop.services.admin.sms_settings import SmsSettings, load_sms_settings, save_sms_settings
from desktop.services.notices import outbox
from desktop.services.notices.delivery_problems import DeliveryProblem
from desktop.services.notices.dispatch import run_cycle
from tests.outbox_support import (
    add_patron,
    add_request,
    add_sms_patron,
    move,
    notices,
    request_status,
    sink_settings,
    start_manager,
)
from tests.sms_provider_server import ACCOUNT_SID, AUTH_TOKEN, ERRORS, HANG_UP, SLOW, ProviderLog, twilio_server
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]

SENDER = "+15005550006"
MOBILE = "+16175551234"


@pytest.fixture
def provider() -> Iterator[tuple[str, ProviderLog]]:
    """The local Twilio Messages API server (slow answers take 2 s; the tests' timeout is 1 s)."""
    with twilio_server(slow_seconds=2.0) as server:
        yield server


def use_sms(db: Database, **changes: object) -> SmsSettings:
    """Store the shared SMS settings (quiet hours off unless given)."""
    values: dict[str, object] = {"quiet_start": "00:00", "quiet_end": "00:00"} | changes
    return save_sms_settings(db, load_sms_settings(db), SmsSettings(**values), changed_by="tester")  # type: ignore[arg-type]


def use_twilio(db: Database, url: str, **changes: object) -> SmsSettings:
    return use_sms(db, transport="twilio", account_sid=ACCOUNT_SID, sender=SENDER, api_base=url, **changes)


def texting_patron(db: Database, number: str | None = MOBILE, **options: Any) -> int:
    """A patron whose "Item ready for pickup" preference is SMS alone (unless ``channels`` is given), with ``number``
    at the Cell location: a failed text then has no next channel, so these tests see the text's own outcome
    (moving on to the next channel is tests/test_fallback.py's)."""
    options.setdefault("channels", "SMS")
    return add_sms_patron(db, number, **options)


def arrive(db: Database, patron_id: int, *, title: str = "Notes on the Analytical Engine") -> int:
    request_id = add_request(db, patron_id, title=title)
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    return request_id


def texting(timeout: float = 1.0) -> Settings:
    """This computer's settings without an SMTP server (the HTTP provider needs none)."""
    return Settings(staff_name="tester", phone_region="US", smtp_timeout=timeout)


def history(db: Database, notice_id: int) -> list[tuple[str, str]]:
    return [(a.outcome, a.reply) for a in outbox.notice_history(db, notice_id)]


def last_tracking(db: Database, request_id: int) -> tuple[str, str, str]:
    with db.read() as session:
        row = session.execute(
            select(Tracking.to_status, Tracking.changed_by, Tracking.note)
            .where(Tracking.request_id == request_id)
            .order_by(Tracking.id.desc())
            .limit(1)
        ).one()
    return row[0], row[1], row[2]


# ----------------------------------------------------------------------------------------- making the notice


def test_sms_first_patron_gets_a_text_notice_to_the_cell_number(any_db: Database) -> None:
    request_id = arrive(any_db, texting_patron(any_db))
    [notice] = notices(any_db)
    assert (notice.channel, notice.state, notice.to_address) == ("sms", "pending", MOBILE)
    assert notice.dedupe_key.startswith(f"arrival:{request_id}:Loan Pickup:")
    # E-Mail patrons without a preference are unchanged; a Phone-first preference gets no notice.
    email_request = arrive(any_db, add_patron(any_db))
    arrive(any_db, texting_patron(any_db, channels="Phone>E-Mail"))
    assert [(n.request_id, n.channel) for n in notices(any_db)] == [(request_id, "sms"), (email_request, "email")]


def test_sms_first_patron_without_a_mobile_number_fails_with_the_reason(any_db: Database) -> None:
    arrive(any_db, texting_patron(any_db, number=None))
    [notice] = notices(any_db)
    assert (notice.channel, notice.state, notice.last_reply) == ("sms", "failed", outbox.NO_MOBILE_REASON)


def test_scan_makes_text_notices_for_arrivals_made_outside_callslip(any_db: Database) -> None:
    """The set-based scan leaves SMS-first patrons to the per-request scan, which makes their texts."""
    sms_request = add_request(any_db, texting_patron(any_db))
    email_request = add_request(any_db, add_patron(any_db))
    for request_id in (sms_request, email_request):
        with any_db.write() as session:  # an import put them there, with a Tracking row but no notice
            session.execute(update(Request).where(Request.id == request_id)
                            .values(status=Status.AWAITING_CUSTOMER_CONTACT.value))  # fmt: skip
            session.add(Tracking(request_id=request_id, from_status=Status.REQUEST_SENT.value,
                                 to_status=Status.AWAITING_CUSTOMER_CONTACT.value, changed_by="import"))  # fmt: skip
    run_cycle(any_db, texting(), send=False)
    found = {n.request_id: (n.channel, n.to_address) for n in notices(any_db)}
    assert found == {sms_request: ("sms", MOBILE), email_request: ("email", "patron@example.org")}
    run_cycle(any_db, texting(), send=False)
    assert len(notices(any_db)) == 2  # nothing twice


# ----------------------------------------------------------------------------------------- the HTTP provider


def test_text_goes_to_the_provider_and_the_request_moves_on(any_db: Database,
                                                             provider: tuple[str, ProviderLog]) -> None:  # fmt: skip
    url, log = provider
    use_twilio(any_db, url)
    request_id = arrive(any_db, texting_patron(any_db))
    summary = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN)
    assert (summary.sent, summary.failed, summary.pending, summary.errors) == (1, 0, 0, [])
    [form] = log.accepted
    assert form["To"] == MOBILE and form["From"] == SENDER
    assert '"Notes on the Analytical Engine" is ready for pickup at' in form["Body"]
    [notice] = notices(any_db)
    assert notice.state == "sent" and notice.message_id == "SM" + f"{1:032x}" and notice.body_text == form["Body"]
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    to_status, by, note = last_tracking(any_db, request_id)
    assert (to_status, by) == (Status.NOTIFIED_VIA_EMAIL.value, "System")
    assert "text message (Loan Pickup)" in note and MOBILE in note and notice.message_id in note
    [(outcome, reply)] = history(any_db, notice.id)
    assert outcome == "sent" and notice.message_id in reply and "1 segment" in reply
    assert run_cycle(any_db, texting(), sms_token=AUTH_TOKEN).sent == 0 and len(log.accepted) == 1


@pytest.mark.parametrize("number", ["+15005550001", "+15005550009", "+15005550004"])
def test_provider_error_codes_that_are_permanent_fail_the_notice(any_db: Database, provider: tuple[str, ProviderLog],
                                                                 number: str) -> None:  # fmt: skip
    use_twilio(any_db, provider[0])
    request_id = arrive(any_db, texting_patron(any_db, number))
    summary = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN)
    assert (summary.sent, summary.failed, summary.pending) == (0, 1, 0)
    [notice] = notices(any_db)
    _status, code, sentence = ERRORS[number]
    assert notice.state == "failed" and sentence in notice.last_reply and str(code) in notice.last_reply
    assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value


@pytest.mark.parametrize("number", ["+15005550002", "+15005550003", SLOW, HANG_UP])
def test_temporary_failures_retry_then_give_up(any_db: Database, provider: tuple[str, ProviderLog],
                                               number: str) -> None:  # fmt: skip
    """429, 500, a provider slower than the timeout and one that hangs up are retried with the back-off."""
    use_twilio(any_db, provider[0])
    arrive(any_db, texting_patron(any_db, number))
    summary = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN)
    assert (summary.sent, summary.retrying, summary.pending) == (0, 1, 1)
    [notice] = notices(any_db)
    assert notice.state == "retrying" and notice.attempts == 1
    assert summary.next_due_at == notice.next_attempt_at and notice.next_attempt_at - utcnow() > timedelta(seconds=50)
    if number == SLOW:
        assert "did not answer in time" in notice.last_reply
    # The last allowed attempt gives up for good.
    with any_db.write() as session:
        session.execute(update(Notification).values(attempts=outbox.MAX_ATTEMPTS - 1))
    later = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN, now=utcnow() + timedelta(hours=2))
    assert (later.failed, later.pending) == (1, 0)
    [notice] = notices(any_db)
    assert notice.state == "failed" and notice.last_reply.startswith(f"gave up after {outbox.MAX_ATTEMPTS} attempts")


def test_a_refused_token_charges_nothing_and_names_the_problem(any_db: Database,
                                                               provider: tuple[str, ProviderLog]) -> None:  # fmt: skip
    use_twilio(any_db, provider[0])
    arrive(any_db, texting_patron(any_db))
    arrive(any_db, texting_patron(any_db, "+16175550000"))
    summary = run_cycle(any_db, texting(), sms_token="wrong-token")
    assert (summary.sent, summary.failed, summary.retrying, summary.pending) == (0, 0, 0, 2)
    assert summary.problem is DeliveryProblem.SMS_REFUSED
    assert any("401" in error and "Authenticate" in error for error in summary.errors)
    assert summary.next_due_at is None  # waits for the next poll, not a loop
    for notice in notices(any_db):
        assert (notice.state, notice.attempts, notice.lease_owner) == ("pending", 0, None)
        assert history(any_db, notice.id) == []
    assert provider[1].requests == 1  # the first refusal stopped the batch
    # Without any token the cycle says what is missing and sends nothing.
    missing = run_cycle(any_db, texting(), sms_token=None)
    assert missing.problem is DeliveryProblem.SMS_NOT_CONFIGURED and "auth token" in "; ".join(missing.errors)
    assert run_cycle(any_db, texting(), sms_token=AUTH_TOKEN).sent == 2


def test_texts_off_wait_and_the_cycle_says_so(any_db: Database) -> None:
    arrive(any_db, texting_patron(any_db))
    summary = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN)
    assert summary.problem is DeliveryProblem.SMS_NOT_CONFIGURED
    assert summary.errors == ["text messages are switched off (Customization Manager → SMS): 1 text(s) waiting"]
    assert (summary.pending, summary.next_due_at) == (0, None)  # the run loop does not spin on a text nobody sends
    assert [n.state for n in notices(any_db)] == ["pending"]


def quiet_around(moment: datetime) -> tuple[str, str]:
    """A quiet window (local time) that contains ``moment`` and opens again one hour later."""
    local = moment.astimezone()
    start = (local - timedelta(hours=1)).time()
    end = (local + timedelta(hours=1)).time()
    return f"{start:%H:%M}", f"{end:%H:%M}"


def test_quiet_hours_hold_texts_until_the_window_opens(any_db: Database, provider: tuple[str, ProviderLog]) -> None:
    now = utcnow()
    start, end = quiet_around(now)
    use_twilio(any_db, provider[0], quiet_start=start, quiet_end=end)
    request_id = arrive(any_db, texting_patron(any_db))
    summary = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN, now=now)
    assert (summary.sent, summary.pending, summary.errors) == (0, 1, [])
    assert summary.texts_resume_at is not None and summary.next_due_at == summary.texts_resume_at
    opening = summary.texts_resume_at.astimezone()
    assert opening.time().replace(second=0, microsecond=0) == time(*map(int, end.split(":")))
    assert "texts wait for quiet hours until" in summary.describe()
    assert provider[1].requests == 0
    after = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN, now=summary.texts_resume_at + timedelta(seconds=1))
    assert after.sent == 1 and after.texts_resume_at is None
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value


def test_a_long_text_is_cut_at_a_word_boundary(any_db: Database, provider: tuple[str, ProviderLog]) -> None:
    use_twilio(any_db, provider[0], max_segments=1)
    arrive(any_db, texting_patron(any_db), title="Word " * 30)
    with any_db.write() as session:  # a title the template does not truncate
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup")
                        .values(body_sms="Ready for pickup: {{ request.title }} and then some more words."))  # fmt: skip
    assert run_cycle(any_db, texting(), sms_token=AUTH_TOKEN).sent == 1
    [form] = provider[1].accepted
    assert measure(form["Body"]).segments == 1 and form["Body"].endswith("Word")
    [notice] = notices(any_db)
    [(_, reply)] = history(any_db, notice.id)
    assert "1 segment, cut from 2 at a word boundary" in reply


def test_a_template_without_an_sms_part_sends_no_text(any_db: Database, provider: tuple[str, ProviderLog]) -> None:
    use_twilio(any_db, provider[0])
    arrive(any_db, texting_patron(any_db))
    with any_db.write() as session:
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup").values(body_sms=""))
    summary = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN)
    assert (summary.sent, summary.failed) == (0, 1)
    [notice] = notices(any_db)
    assert notice.state == "failed" and "has no SMS part" in notice.last_reply
    assert provider[1].requests == 0


def test_a_patron_who_is_now_phoned_gets_no_text(any_db: Database, provider: tuple[str, ProviderLog]) -> None:
    use_twilio(any_db, provider[0])
    patron_id = texting_patron(any_db)
    arrive(any_db, patron_id)
    with any_db.write() as session:
        session.execute(update(PatronChannelPreference).where(PatronChannelPreference.patron_id == patron_id)
                        .values(channels="Phone"))  # fmt: skip
    summary = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN)
    assert (summary.sent, summary.cancelled) == (0, 1)
    assert provider[1].requests == 0
    [notice] = notices(any_db)
    assert notice.last_reply == "cancelled: the patron is now notified by Phone"


# ----------------------------------------------------------------------------------------- the e-mail gateway


def test_gateway_text_arrives_at_the_carrier_address(any_db: Database, smtp_sink: SmtpSink) -> None:
    use_sms(any_db, transport="gateway")
    request_id = arrive(any_db, texting_patron(any_db, carrier="Verizon"))
    summary = run_cycle(any_db, sink_settings(smtp_sink))
    assert (summary.sent, summary.failed, summary.errors) == (1, 0, [])
    [received] = smtp_sink.messages
    assert received.rcpt_tos == ["6175551234@vtext.com"]
    assert received.message.get_content_type() == "text/plain" and not received.message["Subject"]
    assert "is ready for pickup at" in received.message.get_content()
    [notice] = notices(any_db)
    assert notice.state == "sent" and notice.message_id == received.message["Message-ID"]
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    assert "e-mail-to-SMS gateway" in last_tracking(any_db, request_id)[2]


def test_gateway_with_an_unknown_carrier_fails_the_notice(any_db: Database, smtp_sink: SmtpSink) -> None:
    use_sms(any_db, transport="gateway")
    arrive(any_db, texting_patron(any_db, carrier="Carrier Pigeon Wireless"))
    summary = run_cycle(any_db, sink_settings(smtp_sink))
    assert (summary.sent, summary.failed) == (0, 1)
    [notice] = notices(any_db)
    assert notice.state == "failed" and "No e-mail-to-SMS gateway is known for the carrier" in notice.last_reply
    assert smtp_sink.messages == []


# ----------------------------------------------------------------------------------------- exactly once


def sms_backlog(db: Database, count: int) -> None:
    for n in range(count):
        arrive(db, texting_patron(db, f"+1617555{n:04d}"))


def drain_texts(db: Database, sink: SmtpSink, url: str, log: ProviderLog, count: int) -> None:
    use_twilio(db, url)
    sms_backlog(db, count)
    env = {"CALLSLIP_SMS_AUTH_TOKEN": AUTH_TOKEN}
    database = db.url.render_as_string(hide_password=False)
    processes = [start_manager(database, sink, "run", "--once", **env) for _ in range(3)]
    outputs = [p.communicate(timeout=240) for p in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    sent = [int(out.split("sent ")[1].split(",")[0]) for out, _ in outputs]
    assert sum(sent) == count
    assert sum(1 for n in sent if n) >= 2, f"the work was not shared: {sent}"
    assert sorted(form["To"] for form in log.accepted) == sorted(f"+1617555{n:04d}" for n in range(count))
    with db.read() as session:
        states = dict(session.execute(select(Notification.state, func.count()).group_by(Notification.state)).all())
        attempts = session.scalar(select(func.count()).select_from(NotificationAttempt))
        ids = set(session.scalars(select(Notification.message_id)))
    assert states == {"sent": count} and attempts == count and len(ids) == count


@pytest.fixture
def slow_provider() -> Iterator[tuple[str, ProviderLog]]:
    """The provider answering each text after 0.1 s, so a backlog of 30 outlasts a worker's start-up."""
    with twilio_server(delay_seconds=0.1) as server:
        yield server


@pytest.mark.postgres
def test_three_managers_send_each_text_once_on_postgresql(pg_db: Database, smtp_sink: SmtpSink,
                                                          slow_provider: tuple[str, ProviderLog]) -> None:  # fmt: skip
    drain_texts(pg_db, smtp_sink, slow_provider[0], slow_provider[1], 30)


def test_three_managers_send_each_text_once_on_sqlite(sqlite_db: Database, smtp_sink: SmtpSink,
                                                      slow_provider: tuple[str, ProviderLog]) -> None:  # fmt: skip
    assert os.environ.get("CALLSLIP_SMS_AUTH_TOKEN") is None  # the token reaches the workers by their environment
    drain_texts(sqlite_db, smtp_sink, slow_provider[0], slow_provider[1], 30)


# ----------------------------------------------------------------------------------------- hold-shelf reminders


def test_pickup_reminder_follows_the_reminder_preference(any_db: Database, provider: tuple[str, ProviderLog]) -> None:
    """An e-mail arrival, then a reminder by text for a patron whose "Pickup reminder" preference starts with SMS."""
    use_twilio(any_db, provider[0])
    patron_id = texting_patron(any_db, channels="E-Mail", pickup_delay=0)
    with any_db.write() as session:
        session.add(PatronChannelPreference(patron_id=patron_id, event=NoticeEvent.PICKUP_REMINDER.value,
                                            channels="SMS>E-Mail"))  # fmt: skip
    with any_db.write() as session:  # a database made before issue 18 has reminder templates without an SMS part
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup Reminder")
                        .values(body_sms='Reminder: "{{ request.title }}" waits until {{ pickup.hold_until }}.'))  # fmt: skip
    original = load_shelf_settings(any_db)  # the shelf's days counted in UTC, so the test's days are the library's
    save_shelf_settings(any_db, original, replace(original, timezone="UTC"), changed_by="admin")
    arrival = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # a 10-day hold: the default reminder is on the 9th
    request_id = add_request(any_db, patron_id)
    move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT, now=arrival)
    [email] = notices(any_db)
    assert email.channel == "email"  # the arrival follows the other preference
    with any_db.write() as session:  # the arrival e-mail went out back then
        session.execute(update(Notification).values(state="sent"))
    move(any_db, request_id, Status.NOTIFIED_VIA_EMAIL, now=arrival)
    summary = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN, now=datetime(2026, 12, 9, 9, 30, tzinfo=UTC))
    assert summary.reminders == 1 and summary.sent == 1, [(n.channel, n.state, n.last_reply) for n in notices(any_db)]
    [reminder] = notices(any_db, channel="sms")
    assert (reminder.template_name, reminder.state, reminder.to_address) == ("Loan Pickup Reminder", "sent", MOBILE)
    [form] = provider[1].accepted
    assert form["To"] == MOBILE and "2026-12-11" in form["Body"]
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value  # a reminder moves nothing


def test_a_number_added_later_is_used_on_retry(any_db: Database, provider: tuple[str, ProviderLog]) -> None:
    use_twilio(any_db, provider[0])
    patron_id = texting_patron(any_db, number=None)
    request_id = arrive(any_db, patron_id)
    [notice] = notices(any_db)
    assert notice.state == "failed" and notice.last_reply == outbox.NO_MOBILE_REASON
    with any_db.write() as session:  # staff add the mobile number on the Contact Info tab …
        cell = session.scalar(select(Location.id).where(Location.name == "Cell"))
        session.add(ContactPoint(patron_id=patron_id, kind="phone", value="(617) 555-9876", normalized="+16175559876",
                                 location_id=cell, is_primary=True, position=1))  # fmt: skip
    assert outbox.retry_notices(any_db, [request_id], "tester") == 1  # … and press Retry
    assert run_cycle(any_db, texting(), sms_token=AUTH_TOKEN).sent == 1
    [form] = provider[1].accepted
    assert form["To"] == "+16175559876"
    [notice] = notices(any_db)
    assert notice.to_address == "+16175559876" and notice.state == "sent"


def test_gateway_refusals_are_permanent_or_retried_like_mail(any_db: Database, smtp_sink: SmtpSink) -> None:
    use_sms(any_db, transport="gateway")
    arrive(any_db, texting_patron(any_db, carrier="T-Mobile"))
    arrive(any_db, texting_patron(any_db, "+16175550000", carrier="T-Mobile"))
    smtp_sink.behaviour.refuse["6175551234@tmomail.net"] = "550 5.1.1 no such subscriber"
    smtp_sink.behaviour.refuse["6175550000@tmomail.net"] = "451 4.3.0 try later"
    summary = run_cycle(any_db, sink_settings(smtp_sink))
    assert (summary.sent, summary.failed, summary.retrying) == (0, 1, 1)
    failed, retrying = notices(any_db)
    assert failed.state == "failed" and "550 5.1.1 no such subscriber" in failed.last_reply
    assert retrying.state == "retrying" and "451 4.3.0" in retrying.last_reply


# ----------------------------------------------------------------------------------------- digests by text


def test_three_items_arriving_together_go_in_one_text(any_db: Database, provider: tuple[str, ProviderLog]) -> None:
    """A digest by text: one text lists the three items, each request is marked with its own Tracking line, and
    every notice keeps the provider's id of that one text."""
    url, log = provider
    use_twilio(any_db, url)
    patron_id = texting_patron(any_db)
    titles = ["Ada's Notes", "Babbage's Engine", "Lovelace Papers"]
    request_ids = [add_request(any_db, patron_id, title=title) for title in titles]
    t0 = utcnow()
    move(any_db, request_ids[0], Status.AWAITING_CUSTOMER_CONTACT, now=t0)
    held = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN, now=t0 + timedelta(seconds=30))
    assert held.sent == 0 and log.accepted == []  # two more items are on their way: the first waits for them
    for request_id in request_ids[1:]:
        move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT, now=t0 + timedelta(minutes=1))
    summary = run_cycle(any_db, texting(), sms_token=AUTH_TOKEN, now=t0 + timedelta(minutes=2))
    assert (summary.sent, summary.failed, summary.errors) == (3, 0, [])
    [form] = log.accepted
    assert all(title[:12] in form["Body"] for title in titles), form["Body"]
    sent = notices(any_db)
    assert {n.state for n in sent} == {"sent"} and {n.message_id for n in sent} == {sent[0].message_id}
    assert sent[0].message_id.startswith("SM")
    for request_id in request_ids:
        assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
        assert "in one text with 2 other items" in last_tracking(any_db, request_id)[2]
    assert run_cycle(any_db, texting(), sms_token=AUTH_TOKEN, now=t0 + timedelta(minutes=3)).sent == 0
    assert len(log.accepted) == 1
