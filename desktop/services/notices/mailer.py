"""SMTP transport: one connection per batch, timeouts always set, replies classified for the outbox.

Why our own thin layer over :mod:`smtplib` instead of ``sendmail``: the outbox must know the server's exact
reply to the end of DATA (the 250 that makes a notice *sent*), must tell a temporary refusal (4xx, a dropped
connection, a timeout) from a permanent one (5xx, every recipient refused) and must keep one connection open
for a whole batch. Passwords never appear in any message this module produces.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.policy
import hashlib
import html
import re
import secrets
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from types import TracebackType

from desktop.config import Settings, SmtpSecurity
from desktop.domain.clock import utcnow
from desktop.services.notices.delivery_problems import DeliveryProblem
from desktop.services.notices.mail_addresses import (
    AddressError,
    a_label,
    check_header_text,
    envelope_form,
    for_wire,
    needs_smtputf8,
    parse_address_list,
    parse_one,
)
from desktop.services.notices.templates import RenderedNotice

#: Domain used in Message-IDs when no From address gives one (RFC 2606 reserves ``.invalid``).
FALLBACK_DOMAIN = "callslip.invalid"


class Outcome(StrEnum):
    """What happened to one message."""

    SENT = "sent"
    TEMPORARY = "temporary"  # retry later with backoff
    PERMANENT = "permanent"  # do not retry; staff must act
    ABORTED = "aborted"  # the caller's gate said no before the final dot: the server discarded it, nothing sent


@dataclass(frozen=True)
class SendResult:
    """The server's answer to one message.

    Attributes:
        reply: the server's reply (``"250 2.0.0 OK …"``) or a sentence describing a network failure.
        refused: recipients the server refused while others were accepted (address → reply).
        connection_lost: the connection is no longer usable; the transport reconnects before the next message.
        server_wide: the refusal is about this client, not this message (a 421, the connection closed or timed
            out, a 4xx to ``MAIL FROM``): every message would get it now, so the caller stops and backs off.
        ambiguous: the text and final dot went out but no verdict came back: the server may have accepted it.
    """

    outcome: Outcome
    reply: str
    refused: dict[str, str] = field(default_factory=dict)
    connection_lost: bool = False
    server_wide: bool = False
    ambiguous: bool = False


class SmtpConnectionError(Exception):
    """The SMTP server could not be reached or refused the session (TLS, AUTH): nothing was sent.

    Attributes:
        temporary: retrying later may help (refused connection, timeout); False for configuration problems
            such as a wrong password or a server without STARTTLS.
        problem: which kind of problem it is, for the desk's banner (:class:`DeliveryProblem`).
    """

    def __init__(self, message: str, *, temporary: bool, problem: DeliveryProblem) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.problem = problem


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready for the wire: envelope plus the encoded message (CRLF line ends).

    Attributes:
        smtputf8: an address is not ASCII, so the server must offer SMTPUTF8.
    """

    notice_id: int
    sender: str
    recipients: tuple[str, ...]
    message_id: str
    data: bytes
    smtputf8: bool = False


def message_id_for(notice_id: int, dedupe_key: str, from_address: str, installation_id: str = "") -> str:
    """The notice's Message-ID: the same for every attempt, so a duplicate after a crash is traceable.

    Notice ids and dedupe keys repeat from one database to the next (a test copy, another library), so the
    database's random installation id (``system_settings.installation_id``, migration 0007) is part of it:
    ``<callslip.<installation>.<notice id>.<hash of installation and dedupe key>@<From domain>>``.
    """
    try:
        domain = a_label(parse_one(from_address).domain)
    except AddressError:
        domain = FALLBACK_DOMAIN
    digest = hashlib.sha256(f"{installation_id}\0{dedupe_key}".encode()).hexdigest()[:12]
    prefix = f"callslip.{installation_id}" if installation_id else "callslip.notice"
    return f"<{prefix}.{notice_id}.{digest}@{domain}>"


CRLF = "\r\n"
_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")
#: How every message is written: CRLF line ends and 7-bit headers (RFC 2047 encoded words); lines of at most
#: 76 characters, so that no encoded word exceeds RFC 2047's 75 (the default of 78 allows 77).
MESSAGE_POLICY = email.policy.SMTP.clone(max_line_length=76)
#: The same for a message sent with SMTPUTF8 (an address's local part is not ASCII): headers in raw UTF-8.
MESSAGE_POLICY_UTF8 = email.policy.SMTPUTF8.clone(max_line_length=76)


def envelope_address(address: str) -> str:
    """The addr-spec of one address for MAIL FROM / RCPT TO (``"Lovelace, Ada" <a@b>`` → ``a@b``).

    The domain is given as its A-label unless the local part needs SMTPUTF8 anyway.

    Raises:
        ValueError: not exactly one valid address, or it contains a control character such as a line break
            (which would inject an SMTP command).
    """
    parsed = parse_one(address)
    return envelope_form(parsed, smtputf8=needs_smtputf8(parsed))


def html_document(body_html: str, *, title: str = "") -> str:
    """``body_html`` as a full HTML document declaring its charset (a fragment is what templates hold).

    Some clients guess a fragment's encoding or show it in quirks mode; a document with ``<meta charset>`` is
    read the same everywhere. A template that already holds a whole document is sent as it is.
    """
    head = body_html.lstrip()[:200].lower()
    if head.startswith(("<!doctype", "<html")):
        return body_html
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n{body_html}\n</body>\n</html>\n"
    )


def _addresses(values: Sequence[str], part: str) -> list[Address]:
    found: list[Address] = []
    for value in values:
        try:
            found.extend(parse_address_list(value))
        except AddressError as exc:
            raise ValueError(f"{part}: {exc}") from None
    return found


def _one(value: str, part: str) -> Address:
    try:
        return parse_one(value)
    except AddressError as exc:
        raise ValueError(f"{part}: {exc}") from None


def _header(name: str, value: str, policy: email.policy.EmailPolicy[EmailMessage]) -> str:
    """One header line (folded, CRLF-terminated) as ``policy`` writes it.

    A short ASCII value is written as is: that is exactly what the policy's folder produces for it, without
    parsing it again (the structured parsers cost ~0.2 ms a header, more than the whole SMTP exchange of a
    message). Anything else (non-ASCII, long) goes through the header registry: RFC 2047 encoded words of at
    most 75 characters, folded at 76 columns. An ASCII value without spaces (a Message-ID) has no place to fold
    and is written as is too: the policy would move it to a line of its own, and some readers then keep the
    leading space as part of the identifier.
    """
    fits = len(name) + 2 + len(value) <= (policy.max_line_length or 78)
    if value.isascii() and (fits or not any(c.isspace() for c in value)):
        return f"{name}: {value}{CRLF}"
    header = policy.header_factory(name, value)
    return str(header.fold(policy=policy))


def _address_header(name: str, addresses: Sequence[Address], policy: email.policy.EmailPolicy[EmailMessage], *,
                    smtputf8: bool) -> str:  # fmt: skip
    """An address header (From, To, Cc) folded, CRLF-terminated.

    A display name that is not ASCII (in a message without SMTPUTF8) is written as RFC 2047 encoded words by
    :class:`email.header.Header`, which keeps the spaces between the name's words inside the encoded words, one
    mailbox a line. The policy's folder (CPython 3.11) drops such a space when it folds a long name between two
    encoded words, and a reader then shows "Zoë Ångström" as "ZoëÅngström" (RFC 2047 ignores the whitespace
    between encoded words); the property test on patron names found it.
    """
    wired = [for_wire(a, smtputf8=smtputf8) for a in addresses]
    if smtputf8 or all(a.display_name.isascii() for a in wired):
        return _header(name, ", ".join(str(a) for a in wired), policy)
    mailboxes: list[str] = []
    for address in wired:
        angle = f"<{address.addr_spec}>"
        if address.display_name.isascii():
            mailboxes.append(str(address))
            continue
        # maxlinelen 75: the legacy splitter lets a continuation line's word reach 76, one over RFC 2047's limit.
        header = Header(address.display_name, "utf-8", maxlinelen=75, header_name=None if mailboxes else name)
        words = header.encode(linesep=CRLF)
        last_line = words.rsplit(CRLF, 1)[-1]  # a continuation line starts with its space
        start = 0 if CRLF in words else len(name) + 2 if not mailboxes else 1
        fits = start + len(last_line) + 1 + len(angle) <= (policy.max_line_length or 78)
        mailboxes.append(words + (" " if fits else CRLF + " ") + angle)
    return f"{name}: " + f",{CRLF} ".join(mailboxes) + CRLF


def _qp(body: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line ends: 7-bit clean for any server (C-speed ``b2a_qp``)."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def _text_part(body: str, subtype: str) -> bytes:
    head = f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}'
    return head.encode("ascii") + _qp(body)


def build_message(
    rendered: RenderedNotice,
    *,
    notice_id: int,
    message_id: str,
    settings: Settings,
    to: Sequence[str] | None = None,
) -> OutgoingMessage:
    """Turn a rendered template into a MIME message (text, plus HTML when the template has one).

    Addresses are :class:`~email.headerregistry.Address` objects parsed from RFC 5322 address lists (a comma
    inside a quoted name is not a separator); the envelope recipients are exactly the parsed To/CC/BCC
    mailboxes; every header is written by :mod:`email`'s policy (``email.policy.SMTP``, or ``SMTPUTF8`` when
    an address needs it): display names and the subject as RFC 2047 encoded words of at most 75 characters,
    IDN domains as A-labels. Hand-written headers had split recipients on every comma and sent non-ASCII
    names raw. The body is the plain structure every client reads (``text/plain`` or
    ``multipart/alternative``, UTF-8, quoted-printable), written directly: :mod:`email`'s generator costs
    ~1 ms a message for the same bytes.

    Args:
        to: recipients overriding the template's To (a password reset goes to the address staff chose).

    Raises:
        ValueError: no From address (template and Settings both empty), no recipient, an address that is not
            valid, or a control character (line break, vertical tab, …) in a header value.
    """
    from_text = rendered.from_address or settings.smtp_from
    if not from_text:
        raise ValueError("no From address: give one in the template or in Settings (SMTP From)")
    to_list = _addresses(tuple(to) if to is not None else rendered.to, "To")
    if not to_list:
        raise ValueError("no recipient: the template's To renders empty")
    cc_list = _addresses(rendered.cc, "CC")
    bcc_list = _addresses(rendered.bcc, "BCC")
    from_parsed = _one(from_text, "From address")
    sender_parsed = _one(settings.smtp_from, "SMTP From (Settings)") if settings.smtp_from else from_parsed
    for part, value in (("From name", rendered.from_name), ("Subject", rendered.subject)):
        try:
            check_header_text(value)
        except AddressError as exc:
            raise ValueError(f"the {part} {exc}") from None
    everyone = (sender_parsed, from_parsed, *to_list, *cc_list, *bcc_list)
    smtputf8 = any(needs_smtputf8(a) for a in everyone)
    policy = MESSAGE_POLICY_UTF8 if smtputf8 else MESSAGE_POLICY

    name = rendered.from_name or from_parsed.display_name
    addressed = [
        _address_header("From", [Address(name, from_parsed.username, from_parsed.domain)], policy, smtputf8=smtputf8),
        _address_header("To", to_list, policy, smtputf8=smtputf8),
        *([_address_header("Cc", cc_list, policy, smtputf8=smtputf8)] if cc_list else []),
    ]
    headers = [
        ("Subject", rendered.subject),
        ("Date", format_datetime(utcnow())),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
        ("Auto-Submitted", "auto-generated"),
        ("X-Callslip-Notice", str(notice_id)),
    ]
    if rendered.body_html.strip():
        boundary = f"=_callslip_{notice_id}_{secrets.token_hex(8)}"
        marker = f"--{boundary}{CRLF}".encode("ascii")
        document = html_document(rendered.body_html, title=rendered.subject)
        body = (
            marker
            + _text_part(rendered.body_text or "", "plain")
            + CRLF.encode()
            + marker
            + _text_part(document, "html")
            + f"{CRLF}--{boundary}--{CRLF}".encode("ascii")
        )
        content_type = f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"{CRLF}'  # fixed ASCII
        head = "".join(addressed) + "".join(_header(n, v, policy) for n, v in headers) + content_type + CRLF
    else:
        body = _text_part(rendered.body_text or "", "plain")
        # The part's own headers (in ``body``) end the block.
        head = "".join(addressed) + "".join(_header(n, v, policy) for n, v in headers)
    data = head.encode("utf-8" if smtputf8 else "ascii", errors="strict") + body
    sender = envelope_form(sender_parsed, smtputf8=smtputf8)
    recipients = tuple(dict.fromkeys(envelope_form(a, smtputf8=smtputf8) for a in (*to_list, *cc_list, *bcc_list)))
    return OutgoingMessage(notice_id=notice_id, sender=sender, recipients=recipients, message_id=message_id,
                           data=data, smtputf8=smtputf8)  # fmt: skip


def _nothing(_command: str) -> None:
    """The ``waiting`` of a caller with nothing to do while the server works."""


def _reply(code: int, text: bytes | str) -> str:
    body = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(body.split())}".strip()


def _classify(code: int) -> Outcome:
    return Outcome.TEMPORARY if 400 <= code < 500 else Outcome.PERMANENT


#: OpenSSL's verify codes for "the certificate is not for this host" (X509_V_ERR_HOSTNAME_MISMATCH, …_IP_…).
_NAME_MISMATCH = {62, 64}
#: … and for "no trusted authority vouches for it" (self-signed, unknown issuer, incomplete chain).
_UNTRUSTED = {2, 18, 19, 20, 21, 27}


def _certificate_reason(exc: ssl.SSLCertVerificationError) -> str:
    """Distinct advice for the two usual certificate problems: each has a different fix."""
    detail = exc.verify_message or exc.reason or str(exc)
    if exc.verify_code in _NAME_MISMATCH:
        return (
            f"the server's certificate is not for the server name in Settings ({detail}): use the name the "
            "certificate was issued for"
        )
    if exc.verify_code in _UNTRUSTED:
        return (
            f"the server's certificate is not trusted ({detail}): it is self-signed or signed by a certificate "
            "authority this computer does not trust; give that authority's certificate in Settings → "
            "CA certificate file"
        )
    if exc.verify_code == 10:
        return f"the server's certificate has expired ({detail})"
    return f"the server's certificate was refused ({detail})"


def _timed_out(exc: BaseException) -> bool:
    """A timeout, also when smtplib reported it as a closed connection (it re-raises read errors so)."""
    return isinstance(exc, TimeoutError | socket.timeout) or isinstance(exc.__context__, TimeoutError | socket.timeout)


def _network_reason(exc: BaseException) -> str:
    if _timed_out(exc):
        return "timed out waiting for the SMTP server"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"the SMTP server closed the connection ({exc or 'no reason given'})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the SMTP server running and the port right?)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS failed: {_certificate_reason(exc)}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """AUTH with the user name and password sent as UTF-8 (RFC 4616 PLAIN, or LOGIN).

    :meth:`smtplib.SMTP.login` encodes them as ASCII, so a password such as ``Straße-2026`` could never log in.
    ASCII credentials still go through smtplib (which also offers CRAM-MD5).

    Raises:
        smtplib.SMTPAuthenticationError: the server refused them.
        smtplib.SMTPException: the server offers neither PLAIN nor LOGIN.
    """
    if (user + password).isascii():
        smtp.login(user, password)
        return
    mechanisms = smtp.esmtp_features.get("auth", "").upper().split()
    if "PLAIN" in mechanisms:
        code, reply = smtp.docmd("AUTH", "PLAIN " + _b64(f"\0{user}\0{password}"))
    elif "LOGIN" in mechanisms:
        code, reply = smtp.docmd("AUTH", "LOGIN " + _b64(user))
        if code == 334:
            code, reply = smtp.docmd(_b64(password))
    else:
        raise smtplib.SMTPException(
            f"the server offers AUTH {' '.join(mechanisms) or '(none)'}, not PLAIN or LOGIN, which a non-ASCII "
            "user name or password needs"
        )
    if code not in (235, 503):
        raise smtplib.SMTPAuthenticationError(code, reply)


class SmtpTransport:
    """One SMTP session reused for a batch; use as a context manager.

    Args:
        settings: host, port, security mode, user name and timeout.
        password: the SMTP password (from the keyring or the service environment); ``None`` for no AUTH.
        ssl_context: TLS context; the default verifies certificates (tests pass one trusting their sink).
    """

    def __init__(self, settings: Settings, password: str | None, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self._password = password
        self._context = ssl_context
        self._smtp: smtplib.SMTP | None = None
        #: Filled by :meth:`open`: whether TLS is in use and whether AUTH succeeded (``None``: not attempted).
        self.tls_version: str | None = None
        self.authenticated: bool | None = None
        self.greeting = ""
        #: The current message's text and final dot went out: a lost connection now leaves its fate unknown.
        self._awaiting_verdict = False

    @property
    def where(self) -> str:
        """``host:port (security)`` for messages."""
        return f"{self.settings.smtp_host}:{self.settings.effective_smtp_port} ({self.settings.smtp_security})"

    def _ssl_context(self) -> ssl.SSLContext:
        """The system's trusted authorities, plus Settings' CA certificate file (an internal CA) if given.

        Raises:
            SmtpConnectionError: the CA file cannot be read or holds no certificate.
        """
        if self._context is None:
            context = ssl.create_default_context()
            ca_file = self.settings.smtp_ca_file
            if ca_file:
                try:
                    context.load_verify_locations(cafile=ca_file)
                except (OSError, ssl.SSLError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    raise SmtpConnectionError(
                        f"the CA certificate file {ca_file!r} (Settings) cannot be used: {reason}",
                        temporary=False,
                        problem=DeliveryProblem.TLS_FAILED,
                    ) from None
            self._context = context
        return self._context

    def open(self) -> None:
        """Connect, secure and log in.

        Raises:
            SmtpConnectionError: the server cannot be reached, TLS or AUTH failed (no password in the message).
        """
        self.close()
        s = self.settings
        if not s.smtp_host:
            raise SmtpConnectionError(
                "e-mail sending is not configured: no SMTP server in Settings",
                temporary=False,
                problem=DeliveryProblem.NOT_CONFIGURED,
            )
        security = SmtpSecurity(s.smtp_security)
        try:
            smtp: smtplib.SMTP
            if security is SmtpSecurity.SSL:
                smtp = smtplib.SMTP_SSL(
                    s.smtp_host, s.effective_smtp_port, timeout=s.smtp_timeout, context=self._ssl_context()
                )
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.effective_smtp_port, timeout=s.smtp_timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise SmtpConnectionError(
                f"cannot connect to {self.where}: {_network_reason(exc)}",
                temporary=True,
                problem=DeliveryProblem.TLS_FAILED if isinstance(exc, ssl.SSLError) else DeliveryProblem.UNREACHABLE,
            ) from None
        self._smtp = smtp
        with contextlib.suppress(OSError, AttributeError):
            # Commands are small writes, each answered before the next: without TCP_NODELAY, Nagle's algorithm
            # can hold one back for the server's delayed ACK (~40 ms) when a write follows a write.
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        try:
            code, text = smtp.ehlo()
            if not 200 <= code < 300:
                code, text = smtp.helo()
            self.greeting = _reply(code, text).splitlines()[0] if text else str(code)
            if security is SmtpSecurity.STARTTLS:
                if not smtp.has_extn("starttls"):
                    raise SmtpConnectionError(
                        f"{self.where} does not offer STARTTLS", temporary=False, problem=DeliveryProblem.TLS_FAILED
                    )
                smtp.starttls(context=self._ssl_context())
                smtp.ehlo()
            if security is not SmtpSecurity.NONE:
                sock = smtp.sock
                self.tls_version = sock.version() if isinstance(sock, ssl.SSLSocket) else None
            if s.smtp_username:
                self.authenticated = False
                if not smtp.has_extn("auth"):
                    raise SmtpConnectionError(
                        f"{self.where} does not offer AUTH (a user name is configured; the server may only offer it "
                        "over TLS)",
                        temporary=False,
                        problem=DeliveryProblem.SESSION_REFUSED,
                    )
                login(smtp, s.smtp_username, self._password or "")
                self.authenticated = True
        except SmtpConnectionError:
            self.close()
            raise
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            raise SmtpConnectionError(
                f"{self.where} refused the user name or password for {s.smtp_username!r} "
                f"({_reply(exc.smtp_code, exc.smtp_error)})",
                temporary=False,
                problem=DeliveryProblem.AUTH_REFUSED,
            ) from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise SmtpConnectionError(
                f"{self.where} refused the session: {_reply(exc.smtp_code, exc.smtp_error)}",
                temporary=400 <= exc.smtp_code < 500,
                problem=DeliveryProblem.SERVER_BUSY if 400 <= exc.smtp_code < 500 else DeliveryProblem.SESSION_REFUSED,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise SmtpConnectionError(
                f"cannot talk to {self.where}: {_network_reason(exc)}",
                temporary=True,
                problem=DeliveryProblem.TLS_FAILED if isinstance(exc, ssl.SSLError) else DeliveryProblem.UNREACHABLE,
            ) from None

    def close(self) -> None:
        """Say QUIT (politely, ignoring errors) and drop the connection."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            with contextlib.suppress(OSError):
                smtp.close()

    def close_without_quit(self) -> None:
        """Drop the connection at once (mid-DATA: a QUIT would be read as message text)."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(OSError):
                smtp.close()

    def __enter__(self) -> SmtpTransport:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def send(
        self,
        outgoing: OutgoingMessage,
        *,
        gate: Callable[[], bool] | None = None,
        waiting: Callable[[str], None] | None = None,
    ) -> SendResult:
        """Send one message on the open connection (reconnecting first if the last one was lost).

        Args:
            gate: called once the server is ready for the message text (after its 354), before the text and the
                final ``.`` that asks the server to accept it go out. The outbox makes sure there that the
                previous notice's result is committed, so at most one accepted message is ever unrecorded.
                False aborts: the connection is dropped without the dot and the server discards the message.
            waiting: called after each command is written and before the server's reply is read, with the
                command's name (``MAIL``, ``RCPT``, ``DATA``, and ``.`` for the text's end), so the caller's own
                work runs on this thread while the server works (the outbox records the previous notice in the
                ``MAIL`` wait and prepares the next message in the others). It must not raise and must not use
                this transport.

        Never raises for the server's or the network's reasons: every failure is a :class:`SendResult`.
        """
        if self._smtp is None:
            try:
                self.open()
            except SmtpConnectionError as exc:
                outcome = Outcome.TEMPORARY if exc.temporary else Outcome.PERMANENT
                return SendResult(outcome, str(exc), connection_lost=True, server_wide=exc.temporary)
        smtp = self._smtp
        assert smtp is not None
        self._awaiting_verdict = False
        try:
            return self._transaction(smtp, outgoing, gate, waiting or _nothing)
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            # Includes timeouts: the server is gone or overloaded, for every message (server-wide). After the
            # final dot this is ambiguous (the server may have accepted): retrying may then deliver a duplicate,
            # which carries the same Message-ID (see docs/DELIVERY.md).
            self.close_without_quit()
            reason = _network_reason(exc)
            if self._awaiting_verdict and _timed_out(exc):
                reason = (
                    f"timed out after {self.settings.smtp_timeout:g} s waiting for the server's reply to the end of "
                    "the message (it may have been accepted; a retry carries the same Message-ID)"
                )
            elif self._awaiting_verdict:
                reason += " while waiting for its reply to the end of the message (it may have been accepted)"
            return SendResult(Outcome.TEMPORARY, reason, connection_lost=True, server_wide=True,
                              ambiguous=self._awaiting_verdict)  # fmt: skip
        except smtplib.SMTPResponseException as exc:
            self._reset(smtp)
            return SendResult(_classify(exc.smtp_code), _reply(exc.smtp_code, exc.smtp_error))
        finally:
            self._awaiting_verdict = False

    @staticmethod
    def _command(smtp: smtplib.SMTP, name: str, command: str, waiting: Callable[[str], None]) -> tuple[int, bytes]:
        smtp.putcmd(command)  # refuses CR/LF in the command itself
        waiting(name)
        return smtp.getreply()

    def _transaction(
        self,
        smtp: smtplib.SMTP,
        outgoing: OutgoingMessage,
        gate: Callable[[], bool] | None,
        waiting: Callable[[str], None],
    ) -> SendResult:
        options = ""
        if outgoing.smtputf8:
            if not smtp.has_extn("smtputf8"):
                return SendResult(Outcome.PERMANENT, "an address is not ASCII and the server does not offer SMTPUTF8")
            smtp.command_encoding = "utf-8"
            options = " SMTPUTF8"
        # The envelope addresses are bare addr-specs (build_message), so no per-command address parsing here.
        smtp.putcmd(f"MAIL FROM:<{outgoing.sender}>{options}")  # refuses CR/LF in the command itself
        waiting("MAIL")
        code, text = smtp.getreply()
        if code == 421:
            return self._closing(f"sender refused: {_reply(code, text)}")
        if code != 250:
            self._reset(smtp)
            # A 4xx to MAIL FROM (a rate limit, "try later") refuses this client, not this message.
            return SendResult(_classify(code), f"sender refused: {_reply(code, text)}", server_wide=400 <= code < 500)
        accepted: list[str] = []
        refused: dict[str, tuple[int, str]] = {}
        for rcpt in outgoing.recipients:
            code, text = self._command(smtp, "RCPT", f"RCPT TO:<{rcpt}>", waiting)
            if code == 421:
                return self._closing(f"recipient refused: {rcpt}: {_reply(code, text)}")
            if code in (250, 251):
                accepted.append(rcpt)
            else:
                refused[rcpt] = (code, _reply(code, text))
        if not accepted:
            self._reset(smtp)
            codes = [c for c, _ in refused.values()]
            outcome = Outcome.TEMPORARY if codes and all(400 <= c < 500 for c in codes) else Outcome.PERMANENT
            reasons = "; ".join(f"{a}: {r}" for a, (_, r) in refused.items())
            return SendResult(outcome, f"recipient refused: {reasons}")
        code, text = self._command(smtp, "DATA", "DATA", waiting)
        if code == 421:
            return self._closing(_reply(code, text))
        if code != 354:
            self._reset(smtp)
            return SendResult(_classify(code), _reply(code, text))
        if gate is not None and not gate():
            self.close_without_quit()  # no text, no final dot: the server must discard the message
            return SendResult(Outcome.ABORTED, "not sent: stopped before the server accepted it", connection_lost=True)
        payload = _DOT_AT_LINE_START.sub(b"..", outgoing.data)
        self._awaiting_verdict = True
        smtp.send(payload + (b".\r\n" if payload.endswith(b"\r\n") else b"\r\n.\r\n"))
        waiting(".")
        code, text = smtp.getreply()
        self._awaiting_verdict = False
        if code == 421:
            return self._closing(_reply(code, text))
        if code != 250:
            self._reset(smtp)
            return SendResult(_classify(code), _reply(code, text))
        return SendResult(Outcome.SENT, _reply(code, text), refused={a: r for a, (_, r) in refused.items()})

    def _closing(self, reply: str) -> SendResult:
        """The server said 421 (it is closing the connection): a refusal of this client, not of the message."""
        self.close_without_quit()
        return SendResult(Outcome.TEMPORARY, reply, connection_lost=True, server_wide=True)

    def _reset(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            self.close()


# ------------------------------------------------------------------------------------------ Settings helpers


@dataclass(frozen=True)
class ConnectionReport:
    """The result of :func:`check_connection`, for the Settings dialog.

    Attributes:
        ok: connected, TLS (if configured) and AUTH (if configured) all worked.
        tls: TLS in use (protocol version) or ``None``.
        authenticated: AUTH accepted; ``None`` when no user name is configured.
        message: one sentence for staff (never contains the password).
    """

    ok: bool
    host: str
    port: int
    security: str
    tls: str | None
    authenticated: bool | None
    greeting: str
    message: str


def check_connection(
    settings: Settings, password: str | None, *, ssl_context: ssl.SSLContext | None = None
) -> ConnectionReport:
    """Connect, secure, log in and QUIT without sending anything: "Test connection" in Settings."""
    transport = SmtpTransport(settings, password, ssl_context=ssl_context)
    host, port = settings.smtp_host, settings.effective_smtp_port
    try:
        transport.open()
    except SmtpConnectionError as exc:
        return ConnectionReport(
            False,
            host,
            port,
            settings.smtp_security,
            transport.tls_version,
            transport.authenticated,
            transport.greeting,
            str(exc),
        )
    transport.close()
    parts = [f"connected to {host}:{port}"]
    parts.append(f"TLS {transport.tls_version}" if transport.tls_version else "no TLS (plain connection)")
    if transport.authenticated:
        parts.append(f"logged in as {settings.smtp_username!r}")
    elif settings.smtp_username == "":
        parts.append("no login (no user name configured)")
    return ConnectionReport(
        True,
        host,
        port,
        settings.smtp_security,
        transport.tls_version,
        transport.authenticated,
        transport.greeting,
        "; ".join(parts),
    )


def send_test_message(
    settings: Settings,
    password: str | None,
    to: str,
    rendered: RenderedNotice,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> SendResult:
    """Send one rendered template to ``to`` (Customization Manager's "Send test"); nothing is recorded.

    Raises:
        ValueError: ``to`` is not an address or the template has no From address.
    """
    address = _one(to, "test address").addr_spec
    test = RenderedNotice(
        from_name=rendered.from_name,
        from_address=rendered.from_address,
        to=(address,),
        cc=(),
        bcc=(),
        subject=f"[TEST] {rendered.subject}",
        body_text=rendered.body_text,
        body_html=rendered.body_html,
    )
    message_id = message_id_for(0, f"test:{utcnow().isoformat()}", rendered.from_address or settings.smtp_from)
    outgoing = build_message(test, notice_id=0, message_id=message_id, settings=settings)
    transport = SmtpTransport(settings, password, ssl_context=ssl_context)
    try:
        transport.open()
    except SmtpConnectionError as exc:
        return SendResult(Outcome.TEMPORARY if exc.temporary else Outcome.PERMANENT, str(exc), connection_lost=True)
    try:
        return transport.send(outgoing)
    finally:
        transport.close()
