"""The whole loop with real servers: a notice to a user who does not exist goes through the loopback Postfix
(accepted with 250), Postfix bounces it to the library's address, the bounce lands in that IMAP mailbox
(Dovecot), and the next read of the mailbox flags the address and sends the request back to the desk.
On SQLite and PostgreSQL. Needs .ci/postfix.sh and .ci/dovecot_imap.sh (both tiers enabled by .ci/run)."""

from __future__ import annotations

import time

from desktop.db.engine import Database
from desktop.domain.statuses import Status
from desktop.services.notices import outbox
from desktop.services.notices.bounce_mailbox import read_bounce_mailbox
from desktop.services.notices.dispatch import run_cycle
from desktop.services.requests.contact_customers import load_contact_customers
from tests.imap_support import ImapBox, return_box
from tests.outbox_support import add_patron, add_request, move, notices, request_status
from tests.postfix_support import Postfix, postfix, postfix_server
from tests.test_bounces import email_point

__all__ = ["postfix", "postfix_server", "return_box"]

LIBRARY = "ill@library.callslip.test"
NOBODY = "nobody@unknown-users.callslip.test"
#: How long Postfix may take to bounce and deliver the report (it takes about a second).
ARRIVAL_WAIT = 60.0


def wait_for_mail(box: ImapBox) -> None:
    deadline = time.monotonic() + ARRIVAL_WAIT
    while box.count() == 0:
        assert time.monotonic() < deadline, f"no bounce reached {box.user} within {ARRIVAL_WAIT:.0f} s"
        time.sleep(0.2)


def test_send_bounce_flag_and_back_to_the_desk(any_db: Database, postfix: Postfix, return_box: ImapBox) -> None:
    request_id = add_request(any_db, add_patron(any_db, email=NOBODY))
    move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    settings = postfix.settings(smtp_from=LIBRARY)
    summary = run_cycle(any_db, settings, worker="e2e")
    assert summary.sent == 1, summary.describe()
    [notice] = notices(any_db)
    assert notice.last_reply.startswith("250"), "the server accepted it: only the bounce tells the truth"
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value

    postfix.wait_until_delivered()
    wait_for_mail(return_box)
    cycle = read_bounce_mailbox(any_db, return_box.settings(settings), return_box.password, worker="e2e")

    assert cycle.ok, cycle.message
    assert cycle.counts == {"flagged": 1}, cycle.left
    point = email_point(any_db, NOBODY)
    assert point.bounced_at is not None
    assert "5.1.1" in point.bounce_reason and "User unknown" in point.bounce_reason
    assert notices(any_db, id=notice.id)[0].state == outbox.BOUNCED
    assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value
    groups = load_contact_customers(any_db)
    assert [r.request_id for r in groups.mail] == [request_id], "no phone on file: the Mail group, with the reason"
    assert groups.mail[0].email_bounced
    # Read again: nothing is counted twice.
    assert read_bounce_mailbox(any_db, return_box.settings(settings), return_box.password).counts == {}
