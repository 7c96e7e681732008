"""The whole channel chain with every real part (issue 18): the SMTP sink refuses the e-mail with a 550, the
System Manager moves the notice on to a text, the local Twilio server refuses the number for good, and the notice
lands as a call to make in Contact Customers' Phone group — in one cycle, each step in the request's history, on
real SQLite files and real PostgreSQL. Nothing is simulated in the database: each failure is a real server's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import ContactPoint, Location
from desktop.domain.channels import NoticeEvent, parse_preference
from desktop.domain.methods import NotificationMethod
from desktop.domain.statuses import Status
from desktop.services.admin.sms_settings import SmsSettings, load_sms_settings, save_sms_settings
from desktop.services.notices import outbox
from desktop.services.notices.dispatch import run_cycle
from desktop.services.patrons.channel_preferences import load_preferences, save_preferences
from desktop.services.requests.contact_customers import CallOutcome, load_contact_customers, log_calls
from desktop.services.requests.record import get_request
from tests.outbox_support import add_patron, add_request, move, notices, request_status, sink_settings
from tests.sms_provider_server import ACCOUNT_SID, AUTH_TOKEN, ERRORS, ProviderLog, twilio_server
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]

GONE = "gone@example.org"
LANDLINE = "+15005550009"  # the local provider answers 400, error 21614: not a mobile number


@pytest.fixture
def provider() -> Iterator[tuple[str, ProviderLog]]:
    with twilio_server() as server:
        yield server


def chain_patron(db: Database, order: str) -> int:
    """An E-Mail patron with an address the sink refuses, a "mobile" that is a landline, and ``order``."""
    patron_id = add_patron(db, email=GONE)
    with db.write() as session:
        cell = session.scalar(select(Location.id).where(Location.name == "Cell"))
        session.add(ContactPoint(patron_id=patron_id, kind="phone", value=LANDLINE, normalized=LANDLINE,
                                 location_id=cell, is_primary=True))  # fmt: skip
    version = load_preferences(db, patron_id).version
    save_preferences(db, patron_id, version, {NoticeEvent.READY_FOR_PICKUP: parse_preference(order)}, staff="tester")
    return patron_id


def test_email_550_then_a_refused_text_then_the_phone_list(
    any_db: Database, smtp_sink: SmtpSink, provider: tuple[str, ProviderLog]
) -> None:
    url, log = provider
    save_sms_settings(any_db, load_sms_settings(any_db),
                      SmsSettings(transport="twilio", account_sid=ACCOUNT_SID, sender="+15005550006", api_base=url,
                                  quiet_start="00:00", quiet_end="00:00"), changed_by="tester")  # fmt: skip
    smtp_sink.behaviour.refuse[GONE] = "550 5.1.1 user unknown"
    request_id = add_request(any_db, chain_patron(any_db, "E-Mail>SMS>Phone"))
    move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    settings: Settings = sink_settings(smtp_sink)

    summary = run_cycle(any_db, settings, sms_token=AUTH_TOKEN)

    # One cycle: the e-mail refused, the text refused by the provider, each moved on.
    assert (summary.sent, summary.failed, summary.fallbacks, summary.errors) == (0, 2, 2, [])
    assert smtp_sink.messages == [] and log.requests == 1 and log.accepted == []
    email, text, call = notices(any_db)
    assert (email.channel, email.state) == ("email", outbox.FAILED) and "550" in email.last_reply
    assert (text.channel, text.state, text.to_address) == ("sms", outbox.FAILED, LANDLINE)
    assert ERRORS[LANDLINE][2] in text.last_reply and "21614" in text.last_reply
    assert (call.channel, call.state) == ("phone", outbox.PENDING)
    assert call.last_reply.startswith("text failed: SMS provider refused the text") and "21614" in call.last_reply
    assert outbox.count_waiting(any_db) == 0  # a call is staff work: the System Manager does not wait for it

    [row] = [r for r in load_contact_customers(any_db).phone if r.request_id == request_id]
    assert row.method is NotificationMethod.PHONE and row.notice_reply == call.last_reply
    details = get_request(any_db, row.transaction_number)
    steps = [line for _, _, line in details.fallbacks]
    assert len(steps) == 2 and "text message" in steps[0] and "phone call" in steps[1]

    log_calls(any_db, [request_id], CallOutcome.REACHED, "Grace")
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_PHONE.value
    [done] = notices(any_db, channel="phone")
    assert done.state == outbox.SENT
    assert any("Grace" in a.reply for a in outbox.notice_history(any_db, done.id))
    assert run_cycle(any_db, settings, sms_token=AUTH_TOKEN).fallbacks == 0  # nothing moves twice
