"""Reading the bounce mailbox over IMAP (TLS), on the System Manager's own schedule.

One cycle: connect with implicit TLS (``imaplib.IMAP4_SSL``, the system's certificate authorities plus
Settings → CA certificate file), log in, open the folder, and for every message not yet marked handled: read
it without marking it read (``BODY.PEEK[]``), act on it (:func:`desktop.services.notices.bounces.handle_bounce`), and
when it is done with, flag it ``\\Seen`` and ``$CallslipHandled`` and, if a done folder is set, move it there.

What keeps a report from being counted twice:

* the keyword, so a cycle never takes a handled message again;
* the database, for two System Managers reading the same mailbox at once: both may fetch a message before
  either flags it, but only one can insert its ``bounce_reports`` row; the other gets DUPLICATE and just
  flags it too.

What is never lost: a message is flagged only after its effect is committed; one that matches nothing or
cannot be read is left as it was (unflagged, unread) and counted, for a person to look at. An unreachable
server, a refused login or an untrusted certificate ends the cycle with ONE clear line (a
:class:`~desktop.services.notices.delivery_problems.DeliveryProblem`) and changes nothing.
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.domain.clock import utcnow
from desktop.services.notices.bounces import Handled, Outcome, handle_bounce
from desktop.services.notices.delivery_problems import DeliveryProblem

#: The IMAP keyword on a handled report (``$`` keywords are the client-defined kind, RFC 5788).
HANDLED_KEYWORD = "$CallslipHandled"
#: Messages read per cycle at most (the rest wait for the next cycle).
MAX_PER_CYCLE = 500
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class MailboxCycle:
    """What one read of the bounce mailbox did.

    Attributes:
        counts: outcome → messages (``flagged``, ``counted``, ``not_a_failure``, ``duplicate``, ``unmatched``,
            ``malformed``).
        problem: why the mailbox could not be read (``None``: it was); ``message`` says it in one line.
        left: the details of what was left in the mailbox (unmatched or unreadable), one line each.
    """

    counts: dict[str, int] = field(default_factory=dict)
    problem: DeliveryProblem | None = None
    message: str = ""
    left: tuple[str, ...] = ()
    finished_at: datetime = field(default_factory=utcnow)

    @property
    def ok(self) -> bool:
        """The mailbox was read (whatever it held)."""
        return self.problem is None

    def describe(self) -> str:
        """One line for the log and the status bar."""
        if self.problem is not None:
            return self.message
        parts = [f"{self.counts.get(o.value, 0)} {o.value.replace('_', ' ')}" for o in Outcome]
        return "bounce mailbox read: " + ", ".join(parts)


def _where(settings: Settings) -> str:
    return f"the bounce mailbox {settings.bounce_imap_user}@{settings.bounce_imap_host}:{settings.bounce_imap_port}"


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.smtp_ca_file:
        context.load_verify_locations(cafile=settings.smtp_ca_file)
    return context


def _network_problem(exc: BaseException, where: str) -> tuple[DeliveryProblem, str]:
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or str(exc)
        return DeliveryProblem.TLS_FAILED, (
            f"{where}: the server's certificate was refused ({detail}); give the certificate authority in "
            "Settings → CA certificate file, or use the name the certificate was issued for"
        )
    if isinstance(exc, ssl.SSLError):
        return DeliveryProblem.TLS_FAILED, f"{where}: TLS failed ({exc.reason or exc}); the port must be IMAPS (993)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return DeliveryProblem.UNREACHABLE, f"{where}: timed out waiting for the server"
    if isinstance(exc, ConnectionRefusedError):
        return DeliveryProblem.UNREACHABLE, f"{where}: connection refused (is the IMAP server running, the port right?)"
    if isinstance(exc, socket.gaierror):
        return DeliveryProblem.UNREACHABLE, f"{where}: unknown host ({exc.strerror or exc})"
    if isinstance(exc, OSError):
        return DeliveryProblem.UNREACHABLE, f"{where}: network error ({exc.strerror or type(exc).__name__})"
    return DeliveryProblem.SESSION_REFUSED, f"{where}: the server refused the session ({exc})"


def _check(reply: tuple[str, Any], what: str) -> list[Any]:
    status, data = reply
    if status != "OK":
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise imaplib.IMAP4.error(f"{what}: {text or status}")
    return list(data)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_bounce_mailbox(
    db: Database,
    settings: Settings,
    password: str | None,
    *,
    worker: str = "",
    ssl_context: ssl.SSLContext | None = None,
    now: datetime | None = None,
) -> MailboxCycle:
    """Read the bounce mailbox once and act on every report in it (see the module docstring); never raises
    for the mailbox's sake. A database error propagates: the message being handled stays unflagged."""
    where = _where(settings)
    if not settings.bounce_imap_host:
        return MailboxCycle(problem=DeliveryProblem.NOT_CONFIGURED, message="no bounce mailbox in Settings")
    if not password:
        return MailboxCycle(
            problem=DeliveryProblem.AUTH_REFUSED,
            message=f"{where}: no password stored; enter it in Settings → Bounces",
        )
    try:
        context = ssl_context or _ssl_context(settings)
    except (OSError, ssl.SSLError) as exc:
        return MailboxCycle(
            problem=DeliveryProblem.TLS_FAILED,
            message=f"{where}: the CA certificate file {settings.smtp_ca_file!r} cannot be read ({exc})",
        )
    try:
        imap = imaplib.IMAP4_SSL(
            settings.bounce_imap_host, settings.bounce_imap_port, ssl_context=context, timeout=TIMEOUT_SECONDS
        )
    except Exception as exc:  # every way a connection fails ends in one line, never a traceback
        problem, message = _network_problem(exc, where)
        return MailboxCycle(problem=problem, message=message)
    try:
        try:
            imap.login(settings.bounce_imap_user, password)
        except imaplib.IMAP4.error as exc:
            return MailboxCycle(
                problem=DeliveryProblem.AUTH_REFUSED,
                message=f"{where}: the server refused the user name or password ({_text(exc)}); check them in "
                "Settings → Bounces",
            )
        try:
            _check(imap.select(_quoted(settings.bounce_imap_folder)), f"folder {settings.bounce_imap_folder!r}")
        except imaplib.IMAP4.error as exc:
            return MailboxCycle(problem=DeliveryProblem.SESSION_REFUSED, message=f"{where}: {_text(exc)}")
        return _read(imap, db, settings, worker, now)
    except (imaplib.IMAP4.abort, OSError) as exc:
        problem, message = _network_problem(exc, where)
        return MailboxCycle(problem=problem, message=f"{message}; what was not flagged is read again next time")
    except imaplib.IMAP4.error as exc:
        return MailboxCycle(problem=DeliveryProblem.SESSION_REFUSED, message=f"{where}: {_text(exc)}")
    finally:
        _logout(imap)


def _text(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return " ".join(text.split())


def _logout(imap: imaplib.IMAP4) -> None:
    with contextlib.suppress(Exception):  # the connection may be gone already; nothing to keep
        imap.logout()


def _read(imap: imaplib.IMAP4, db: Database, settings: Settings, worker: str, now: datetime | None) -> MailboxCycle:
    data = _check(imap.uid("SEARCH", "UNKEYWORD", HANDLED_KEYWORD), "search")
    found = data[0] if data and isinstance(data[0], bytes) else b""
    uids = [u.decode("ascii") for u in found.split()][:MAX_PER_CYCLE]
    counts: Counter[str] = Counter()
    left: list[str] = []
    can_move = "MOVE" in imap.capabilities
    for uid in uids:
        fetched = _check(imap.uid("FETCH", uid, "(BODY.PEEK[])"), f"fetch {uid!r}")
        raw = next((part[1] for part in fetched if isinstance(part, tuple) and len(part) > 1), None)
        if not isinstance(raw, bytes):
            continue  # expunged meanwhile (another System Manager moved it): nothing to do
        handled: Handled = handle_bounce(db, raw, worker=worker, now=now)
        counts[handled.outcome.value] += 1
        if not handled.handled:
            left.append(f"message {uid}: {handled.detail}")
            continue
        _check(imap.uid("STORE", uid, "+FLAGS", f"(\\Seen {HANDLED_KEYWORD})"), "flag")
        if settings.bounce_imap_done_folder:
            _move(imap, uid, settings.bounce_imap_done_folder, can_move)
    return MailboxCycle(counts=dict(counts), left=tuple(left))


def _move(imap: imaplib.IMAP4, uid: str, folder: str, can_move: bool) -> None:
    target = _quoted(folder)
    if can_move:
        _check(imap.uid("MOVE", uid, target), f"move to {folder!r}")
        return
    _check(imap.uid("COPY", uid, target), f"copy to {folder!r}")
    _check(imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)"), "delete after copy")
    imap.expunge()
