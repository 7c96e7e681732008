"""The System Manager against a real Postfix on loopback (``.ci/postfix.sh``): every notice lands in exactly the
right Maildirs and parses without a defect, the counts match the database, STARTTLS/implicit TLS with AUTH
through Dovecot work, a 421 and a rate limit cause one refusal and a back-off rather than a burst, and Postfix
logs no warning about the client. Skipped unless ``CALLSLIP_TEST_POSTFIX=1`` (``.ci/run`` sets it)."""

from __future__ import annotations

import collections
import os
import signal
import smtplib
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from email.message import EmailMessage
from email.utils import getaddresses

import pytest
from sqlalchemy import update

from desktop.db.engine import Database
from desktop.db.models import NoticeTemplate, Patron
from desktop.domain.statuses import Status
from desktop.services.notices import smtp_backoff
from desktop.services.notices.delivery_problems import DeliveryProblem
from desktop.services.notices.dispatch import run_cycle
from tests.outbox_support import ROOT, add_patron, add_request, bulk_arrivals, move, notices
from tests.postfix_support import (
    BUSY_SENDER,
    OWN_DOMAIN,
    Postfix,
    postfix,
    postfix_server,
    report_row,
    warnings_about_clients,
)

__all__ = ["postfix", "postfix_server"]

pytestmark = pytest.mark.postfix

LOAN_TEMPLATE = "Loan Pickup"


def arrival(db: Database, first: str, last: str, address: str) -> int:
    """A patron with these names and e-mail, and a loan of theirs at Awaiting Customer Contact."""
    patron_id = add_patron(db, email=address)
    with db.write() as session:
        session.execute(update(Patron).where(Patron.id == patron_id).values(first_name=first, last_name=last))
    request_id = add_request(db, patron_id, title="Über die Analytische Maschine — 解析機関")
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    return request_id


def customise(db: Database, **fields: str) -> None:
    """Change the Loan Pickup template as staff would in the Customization Manager."""
    with db.write() as session:
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == LOAN_TEMPLATE).values(**fields))


def defects(message: EmailMessage) -> list[str]:
    """Every defect Python's parser found, in the message, its parts and its headers."""
    found = [f"{type(d).__name__}" for part in message.walk() for d in part.defects]
    for name, value in message.items():
        found += [f"{name}: {type(d).__name__}" for d in getattr(value, "defects", ())]
    return found


def delivered(postfix: Postfix, domain: str) -> dict[str, list[str]]:
    """Local part → Message-IDs delivered there, after Postfix has delivered everything it accepted."""
    postfix.wait_until_delivered()
    boxes = postfix.mailboxes(domain)
    for messages in boxes.values():
        for message in messages:
            assert defects(message) == [], defects(message)
            assert "Bcc" not in message  # a blind copy stays blind
    return {box: [str(m["Message-ID"]) for m in messages] for box, messages in boxes.items()}


def stray_copies(postfix: Postfix, message_ids: set[str]) -> list[str]:
    """Our messages delivered to the server's own domain: recipients it had to qualify (name fragments)."""
    return [
        box
        for box, messages in postfix.mailboxes(OWN_DOMAIN).items()
        for m in messages
        if str(m["Message-ID"]) in message_ids
    ]


def check_delivery(db: Database, postfix: Postfix, domain: str, expected: dict[str, int], scenario: str) -> None:
    """Each Maildir of ``domain`` got exactly the expected count; every sent notice arrived; no warning logged."""
    boxes = delivered(postfix, domain)
    stored = {n.message_id for n in notices(db) if n.state == "sent"}
    assert {box: len(ids) for box, ids in boxes.items()} == expected
    arrived = collections.Counter(mid for ids in boxes.values() for mid in ids)
    assert set(arrived) == stored  # the counts match the database
    assert stray_copies(postfix, stored) == []
    duplicates = sum(n - 1 for ids in boxes.values() for n in collections.Counter(ids).values())  # per mailbox
    report_row(scenario, sent=len(stored), delivered=sum(len(ids) for ids in boxes.values()), duplicates=duplicates,
               lost=len(stored - set(arrived)))  # fmt: skip
    assert duplicates == 0


def test_default_template_every_notice_in_its_patrons_maildir(sqlite_db: Database, postfix: Postfix) -> None:
    domain = postfix.new_domain()
    names = [("Ada", "Lovelace"), ("Zoë", "Ångström"), ("小龍", "李"), ("Olivia", "O'Brien"), ("Ана", "Петрова")]
    for i in range(30):
        first, last = names[i % len(names)]
        arrival(sqlite_db, first, last, f"patron{i}@{domain}")
    offset = postfix.log_offset()
    summary = run_cycle(sqlite_db, postfix.settings())
    assert (summary.sent, summary.pending, summary.errors) == (30, 0, [])
    check_delivery(sqlite_db, postfix, domain, {f"patron{i}": 1 for i in range(30)}, "default template, 30 patrons")
    assert warnings_about_clients(postfix.log_since(offset)) == []


def test_several_recipients_cc_and_bcc_each_get_one_copy(sqlite_db: Database, postfix: Postfix) -> None:
    domain = postfix.new_domain()
    customise(sqlite_db, to_address=f"{{{{ patron.email }}}}, desk@{domain}", cc=f"circulation@{domain}",
              bcc=f"audit@{domain}")  # fmt: skip
    for i in range(10):
        arrival(sqlite_db, "Ada", f"Tester{i}", f"patron{i}@{domain}")
    offset = postfix.log_offset()
    summary = run_cycle(sqlite_db, postfix.settings())
    assert (summary.sent, summary.errors) == (10, [])
    expected = {f"patron{i}": 1 for i in range(10)} | {"desk": 10, "circulation": 10, "audit": 10}
    check_delivery(sqlite_db, postfix, domain, expected, "To + second To + CC + BCC, 10 notices")
    for box, messages in postfix.mailboxes(domain).items():
        for message in messages:
            cc = [address for _, address in getaddresses([str(message["Cc"])])]
            assert cc == [f"circulation@{domain}"], box
    assert warnings_about_clients(postfix.log_since(offset)) == []


@pytest.mark.parametrize(
    ("to", "names"),
    [
        pytest.param(
            '"{{ patron.last_name }}, {{ patron.first_name }}" <{{ patron.email }}>',
            [("Olivia", "O'Brien"), ("Ada", "Lovelace, Countess"), ("Jean", 'D"Arc')],
            id="quoted-comma-names",
        ),
        pytest.param(
            "{{ patron.full_name }} <{{ patron.email }}>",
            [("Zoë", "Ångström"), ("小龍", "李"), ("Ана", "Петрова")],
            id="non-ascii-names",
        ),
    ],
)
def test_customised_to_with_names_reaches_exactly_the_patron(
    sqlite_db: Database, postfix: Postfix, to: str, names: list[tuple[str, str]]
) -> None:
    """The issue's first two defects, seen by a real server: fragments of a quoted name must not become
    recipients, and a non-ASCII display name must be encoded, not fail the notice."""
    domain = postfix.new_domain()
    customise(sqlite_db, to_address=to)
    for i, (first, last) in enumerate(names * 4):
        arrival(sqlite_db, first, last, f"patron{i}@{domain}")
    offset = postfix.log_offset()
    summary = run_cycle(sqlite_db, postfix.settings())
    assert (summary.sent, summary.failed, summary.errors) == (12, 0, [])
    check_delivery(sqlite_db, postfix, domain, {f"patron{i}": 1 for i in range(12)}, f"To with names ({to})")
    for messages in postfix.mailboxes(domain).values():
        [(name, _address)] = getaddresses([str(messages[0]["To"])])
        assert name  # the display name survived the trip
    assert warnings_about_clients(postfix.log_since(offset)) == []


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_auth_through_dovecot(sqlite_db: Database, postfix: Postfix, security: str) -> None:
    """STARTTLS on the submission port and implicit TLS, both requiring AUTH (Dovecot SASL), with the test CA."""
    domain = postfix.new_domain()
    for i in range(5):
        arrival(sqlite_db, "Ada", f"Tester{i}", f"patron{i}@{domain}")
    port = postfix.submission_port if security == "starttls" else postfix.smtps_port
    settings = postfix.settings(smtp_port=port, smtp_security=security, smtp_username=postfix.user)
    offset = postfix.log_offset()
    refused = run_cycle(sqlite_db, settings, password="wrong", ssl_context=postfix.ssl_context())
    assert refused.problem is DeliveryProblem.AUTH_REFUSED and refused.sent == 0
    summary = run_cycle(sqlite_db, settings, password=postfix.password, ssl_context=postfix.ssl_context())
    assert (summary.sent, summary.errors) == (5, [])
    check_delivery(sqlite_db, postfix, domain, {f"patron{i}": 1 for i in range(5)}, f"{security} + AUTH, 5 notices")
    logged = postfix.log_since(offset)
    assert any("TLS connection established" in line for line in logged)
    assert any("sasl_username=" + postfix.user in line for line in logged)
    # The wrong password is Postfix's warning about our first session; nothing else is.
    assert all("authentication failed" in line for line in warnings_about_clients(logged))


def test_421_at_mail_from_is_one_refusal_and_a_back_off(sqlite_db: Database, postfix: Postfix) -> None:
    """Postfix answers 421 to MAIL FROM for this sender and closes: one connection, then nobody tries again
    until the back-off ends; no notice is charged an attempt."""
    domain = postfix.new_domain()
    busy = postfix.settings(smtp_from=BUSY_SENDER)  # the envelope sender Postfix refuses with 421
    bulk_arrivals(sqlite_db, 40, domain=domain)
    offset = postfix.log_offset()
    first = run_cycle(sqlite_db, busy)
    again = run_cycle(sqlite_db, busy)
    assert first.problem is DeliveryProblem.SERVER_BUSY and first.backoff_until is not None
    assert again.problem is DeliveryProblem.SERVER_BUSY and again.backoff_until == first.backoff_until
    assert (first.sent, first.pending) == (0, 40)
    assert {n.attempts for n in notices(sqlite_db)} == {0}
    logged = postfix.log_since(offset)
    refusals = [line for line in logged if "reject: MAIL from" in line and " 421 " in line]
    connections = [line for line in logged if "smtpd" in line and ": connect from" in line]
    assert (len(refusals), len(connections)) == (1, 1), logged  # not one per notice
    # The server recovers (it takes the library's sender again): after the back-off all 40 go out.
    done = run_cycle(sqlite_db, postfix.settings(), now=first.backoff_until + timedelta(seconds=1))
    assert (done.sent, done.pending, done.problem) == (40, 0, None)
    expected = {f"patron{n.patron_id}": 1 for n in notices(sqlite_db)}
    check_delivery(sqlite_db, postfix, domain, expected, "421, back-off, then recovery: 40 notices")
    assert smtp_backoff.current(sqlite_db, f"{postfix.host}:{postfix.port}") is None


def test_a_rate_limit_is_one_refusal_not_a_burst(sqlite_db: Database, postfix: Postfix) -> None:
    """Port 2526 allows a client 5 messages a minute (anvil); the 6th MAIL FROM gets 450. The System Manager
    stops there and backs off: one refusal in Postfix's log, not one per remaining notice."""
    domain = postfix.new_domain()
    bulk_arrivals(sqlite_db, 15, domain=domain)
    offset = postfix.log_offset()
    settings = postfix.settings(smtp_port=postfix.rate_limited_port)
    first = run_cycle(sqlite_db, settings)
    again = run_cycle(sqlite_db, settings)
    assert first.problem is DeliveryProblem.SERVER_BUSY and first.sent <= 5
    assert again.sent == 0 and again.backoff_until == first.backoff_until
    limited = [line for line in postfix.log_since(offset) if "rate limit exceeded" in line]
    assert len(limited) == 1, limited
    waiting = [n for n in notices(sqlite_db) if n.state == "pending"]
    assert len(waiting) == 15 - first.sent and {n.attempts for n in waiting} == {0}
    postfix.wait_until_delivered()
    boxes = postfix.mailboxes(domain)
    assert sum(len(m) for m in boxes.values()) == first.sent
    report_row("rate limit 5/min, 15 notices (first cycle)", sent=first.sent,
               delivered=sum(len(m) for m in boxes.values()), duplicates=0, lost=0)  # fmt: skip


def test_three_system_managers_at_once_deliver_each_notice_once(sqlite_db: Database, postfix: Postfix) -> None:
    """Three ``callslip-manager run --once`` processes against Postfix: 300 notices, 300 deliveries."""
    domain = postfix.new_domain()
    bulk_arrivals(sqlite_db, 300, domain=domain)
    env = dict(os.environ)
    env.update({"CALLSLIP_SMTP_HOST": postfix.host, "CALLSLIP_SMTP_PORT": str(postfix.port),
                "CALLSLIP_SMTP_SECURITY": "none", "CALLSLIP_SMTP_FROM": "ill@library.example.org",
                "PYTHONPATH": str(ROOT), "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"})  # fmt: skip
    url = sqlite_db.url.render_as_string(hide_password=False)
    offset = postfix.log_offset()
    command = [sys.executable, "-m", "desktop.manager", "--database", url, "run", "--once"]
    processes = [
        subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for process in processes:
        _out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
    boxes = delivered(postfix, domain)
    assert sorted(boxes) == sorted(f"patron{n.patron_id}" for n in notices(sqlite_db))
    check_delivery(sqlite_db, postfix, domain, {box: 1 for box in boxes}, "3 managers at once, 300 notices")
    assert warnings_about_clients(postfix.log_since(offset)) == []


def test_nothing_leaves_the_machine(postfix: Postfix) -> None:
    """The configuration itself: loopback only, outbound transports disabled, and any domain at all (here a real
    one) is delivered into a local Maildir by the catch-all, never relayed."""
    config = subprocess.run(["postconf", "-h", "inet_interfaces", "default_transport", "relay_transport",
                             "relayhost"], capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
    assert config[0] == "127.0.0.1"
    assert config[1].startswith("error:") and config[2].startswith("error:") and config[3] == ""
    local = f"nobody-{uuid.uuid4().hex[:8]}"
    offset = postfix.log_offset()
    with smtplib.SMTP(postfix.host, postfix.port, timeout=10) as smtp:
        smtp.sendmail("ill@library.example.org", [f"{local}@gmail.com"], b"Subject: test\r\n\r\nlocal only\r\n")
    postfix.wait_until_delivered()
    assert len(postfix.mailboxes("gmail.com")[local]) == 1
    deliveries = [line for line in postfix.log_since(offset) if f"to=<{local}@gmail.com>" in line]
    assert deliveries and all("relay=callslipmaildir" in line for line in deliveries), deliveries


def delivered_count(postfix: Postfix, domain: str) -> int:
    """Messages in the domain's Maildirs so far (without waiting for the queue)."""
    folder = postfix.maildir / domain
    return sum(1 for _ in folder.glob("*/new/*")) if folder.is_dir() else 0


def test_postfix_stopped_mid_run_backs_off_and_loses_nothing(sqlite_db: Database, postfix: Postfix) -> None:
    """Postfix is stopped after 50 of 150 messages: the System Manager backs off instead of reconnecting per
    notice, and once Postfix is back and the back-off over, everything arrives, at most one message twice."""
    domain = postfix.new_domain()
    bulk_arrivals(sqlite_db, 150, domain=domain)
    sent_before_stop: list[int] = []

    def stop_postfix_after_50() -> bool:
        if not sent_before_stop and sum(1 for n in notices(sqlite_db) if n.state == "sent") >= 50:
            subprocess.run(["postfix", "stop"], check=True, capture_output=True)
            sent_before_stop.append(1)
        return False

    try:
        first = run_cycle(sqlite_db, postfix.settings(), should_stop=stop_postfix_after_50)
    finally:
        subprocess.run(["postfix", "start"], check=True, capture_output=True)
    assert sent_before_stop and first.problem in (DeliveryProblem.SERVER_BUSY, DeliveryProblem.UNREACHABLE)
    assert first.backoff_until is not None and first.sent >= 50 and first.pending > 0
    postfix.wait_for_listener()
    rest = run_cycle(sqlite_db, postfix.settings(), now=first.backoff_until + timedelta(seconds=1))
    assert (rest.pending, rest.errors) == (0, [])
    boxes = delivered(postfix, domain)
    arrived = collections.Counter(mid for ids in boxes.values() for mid in ids)
    stored = {n.message_id for n in notices(sqlite_db)}
    duplicates = sum(n - 1 for n in arrived.values())
    report_row("Postfix stopped after 50 of 150, back-off, restarted", sent=len(stored),
               delivered=sum(arrived.values()), duplicates=duplicates, lost=len(stored - set(arrived)))  # fmt: skip
    assert set(arrived) == stored and duplicates <= 1


def test_sigkill_mid_batch_against_postfix(sqlite_db: Database, postfix: Postfix) -> None:
    """A ``callslip-manager run`` killed with SIGKILL after 40 deliveries: another System Manager, one lease
    later, sends the rest; at most the one message in flight arrives twice, nothing is lost."""
    domain = postfix.new_domain()
    bulk_arrivals(sqlite_db, 200, domain=domain)
    env = dict(os.environ)
    env.update({"CALLSLIP_SMTP_HOST": postfix.host, "CALLSLIP_SMTP_PORT": str(postfix.port),
                "CALLSLIP_SMTP_SECURITY": "none", "CALLSLIP_SMTP_FROM": "ill@library.example.org",
                "PYTHONPATH": str(ROOT), "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"})  # fmt: skip
    url = sqlite_db.url.render_as_string(hide_password=False)
    command = [sys.executable, "-m", "desktop.manager", "--database", url, "run", "--once"]
    worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while delivered_count(postfix, domain) < 40 and worker.poll() is None:
            time.sleep(0.01)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL, "the manager finished before it could be killed"
    leased = [n.lease_until for n in notices(sqlite_db) if n.lease_owner is not None]
    assert leased, "the killed manager held no claim"
    rest = run_cycle(sqlite_db, postfix.settings(), now=max(t for t in leased if t) + timedelta(seconds=1))
    assert (rest.pending, rest.errors) == (0, [])
    boxes = delivered(postfix, domain)
    arrived = collections.Counter(mid for ids in boxes.values() for mid in ids)
    stored = {n.message_id for n in notices(sqlite_db)}
    duplicates = sum(n - 1 for n in arrived.values())
    report_row("SIGKILL of a manager after 40 of 200, another after its lease", sent=len(stored),
               delivered=sum(arrived.values()), duplicates=duplicates, lost=len(stored - set(arrived)))  # fmt: skip
    assert set(arrived) == stored and duplicates <= 1
