"""The desk's System Manager reads the bounce mailbox on its own schedule: an unreachable mailbox is one clear
line in the problem banner (and mail still goes out); on the real IMAP server a bounce flags the address."""

from __future__ import annotations

import socket

from pytestqt.qtbot import QtBot

from desktop.db.engine import Database
from desktop.secrets import BOUNCE_IMAP_KEYRING_SERVICE, bounce_imap_account
from desktop.ui.context import AppContext
from desktop.ui.notices.poller import PollerController
from tests.conftest import MemoryKeyring
from tests.imap_support import ImapBox, imap_box
from tests.outbox_support import notices, sink_settings
from tests.smtp_sink import SmtpSink, smtp_sink
from tests.test_bounces import dsn, email_point, sent_notice

__all__ = ["imap_box", "smtp_sink"]


def closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])


def test_an_unreachable_bounce_mailbox_is_one_line_in_the_banner(
    sqlite_db: Database, smtp_sink: SmtpSink, qtbot: QtBot, memory_keyring: MemoryKeyring
) -> None:
    port = closed_port()
    settings = sink_settings(smtp_sink, bounce_imap_host="127.0.0.1", bounce_imap_port=port,
                             bounce_imap_user="ill@library.example.org")  # fmt: skip
    memory_keyring.set_password(BOUNCE_IMAP_KEYRING_SERVICE, bounce_imap_account(settings), "pw")
    ctx = AppContext(sqlite_db, settings)
    controller = PollerController(ctx)
    try:
        with qtbot.waitSignal(controller.problem, timeout=20_000) as blocker:
            controller.start()
        assert blocker.args[0] == (
            f"the bounce mailbox ill@library.example.org@127.0.0.1:{port}: connection refused (is the IMAP server "
            "running, the port right?)"
        )
        assert controller.last_summary is not None and controller.last_summary.errors == [], "sending goes on"
    finally:
        controller.shutdown()
        ctx.shutdown()


def test_the_desk_poller_flags_a_bounced_address(
    sqlite_db: Database, smtp_sink: SmtpSink, qtbot: QtBot, memory_keyring: MemoryKeyring, imap_box: ImapBox
) -> None:
    sent_notice(sqlite_db, smtp_sink)
    [notice] = notices(sqlite_db)
    imap_box.append(dsn(notice.message_id, "patron@example.org"))
    settings = imap_box.settings(sink_settings(smtp_sink))
    memory_keyring.set_password(BOUNCE_IMAP_KEYRING_SERVICE, bounce_imap_account(settings), imap_box.password)
    ctx = AppContext(sqlite_db, settings)
    controller = PollerController(ctx)
    try:
        with qtbot.waitSignal(controller.cycleFinished, timeout=20_000):
            controller.start()
        qtbot.waitUntil(lambda: email_point(sqlite_db).bounced_at is not None, timeout=20_000)
        assert controller.last_problem == ""
    finally:
        controller.shutdown()
        ctx.shutdown()
