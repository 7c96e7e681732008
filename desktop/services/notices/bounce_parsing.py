"""Reading a bounce: what failed, for whom, how badly, and which notice it was about.

A server's 250 means "accepted", not "delivered": the real verdict arrives minutes later as a message to the
envelope sender. This module turns one such message (raw bytes from the bounce mailbox) into a
:class:`BounceReport`, and never raises, whatever the bytes: a mailbox holds whatever anyone sent to it.

Order of trust:

1. **RFC 3464 delivery status notifications** (``multipart/report; report-type=delivery-status``), what
   Postfix, Exim, Exchange and Gmail send: the ``message/delivery-status`` part gives, per recipient,
   ``Final-Recipient``, ``Action``, ``Status`` and ``Diagnostic-Code``; the returned message
   (``message/rfc822``) or its headers (``text/rfc822-headers``) give the original ``Message-ID`` and
   ``X-Callslip-Notice``. Only ``Action: failed`` is a failure; ``delayed`` (the server is still trying),
   ``delivered``, ``relayed`` and ``expanded`` are not.
2. **Out-of-office and other automatic replies** are recognised by their headers (RFC 3834
   ``Auto-Submitted: auto-replied``, ``X-Autoreply``, ``Precedence: auto_reply``, an "Automatic reply" /
   "Out of Office" subject) and never count as failures.
3. **Everything else** goes to `flufl.bounce <https://gitlab.com/warsaw/flufl.bounce>`_, GNU Mailman's
   maintained collection of heuristic detectors for non-standard bounces (qmail, old Exchange, Yahoo, …). It
   says only which addresses failed (permanent or temporary); the status and diagnostic are then the first
   SMTP reply found in the text, if any.

A token from a per-notice return address (VERP, ``local+n-<token>@domain``; see
:mod:`desktop.services.bounce_tracking`) is taken from the headers the receiving server wrote
(``Delivered-To``, ``X-Original-To``, ``Envelope-To``) or the report's ``To``.
"""

from __future__ import annotations

import email
import email.header
import email.message
import email.parser
import email.policy
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from flufl.bounce import all_failures


class BounceKind(StrEnum):
    """What a message in the bounce mailbox means for the notice it is about."""

    #: A permanent failure (5.x.x): the address does not work.
    HARD = "hard"
    #: A failure the server gave up on but that may pass (4.x.x: mailbox full, over quota): counted; a repeat flags.
    SOFT = "soft"
    #: ``Action: delayed``: the server is still trying. Not a failure.
    DELAYED = "delayed"
    #: An out-of-office or other automatic reply. Not a failure.
    AUTO_REPLY = "auto_reply"
    #: A report of success (``delivered``/``relayed``/``expanded``) or a message that is not a bounce at all.
    NOT_A_BOUNCE = "not_a_bounce"
    #: The bytes could not be read as a message, or as a report they claim to be.
    MALFORMED = "malformed"

    @property
    def is_failure(self) -> bool:
        """Hard and soft bounces are failures; everything else leaves the notice and the address alone."""
        return self in (BounceKind.HARD, BounceKind.SOFT)


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient a report is about.

    Attributes:
        address: the recipient's addr-spec, lower-cased (``Final-Recipient``, else ``Original-Recipient``).
        action: the DSN's ``Action`` (``failed``, ``delayed``, …), or ``failed`` from the heuristic parser.
        status: the enhanced status code (``5.1.1``), or "" when the report gives none.
        diagnostic: the remote server's reply (``550 5.1.1 <x@y>: user unknown``), without the ``smtp;`` type.
    """

    address: str
    action: str
    status: str = ""
    diagnostic: str = ""

    @property
    def hard(self) -> bool:
        """A permanent failure: a 5.x.x status, or a 5xx reply when there is no status."""
        if self.status:
            return self.status.startswith("5")
        return bool(re.match(r"\s*5\d\d\b", self.diagnostic))

    def summary(self) -> str:
        """``550 5.1.1 user unknown``-style text for the flag and the notice's history (one line, ≤ 300 chars)."""
        text = " ".join(self.diagnostic.split())
        if self.status and self.status not in text:
            text = f"{self.status} {text}".strip()
        return (text or self.status or "no reason given")[:300]


@dataclass(frozen=True)
class BounceReport:
    """What one message in the bounce mailbox says.

    Attributes:
        kind: the verdict (see :class:`BounceKind`).
        recipients: the recipients that failed (for HARD/SOFT) or were delayed (DELAYED).
        original_message_id: the returned message's ``Message-ID`` (angle brackets kept), or "".
        notice_id: the returned message's ``X-Callslip-Notice``, or ``None``.
        verp_token: the ``n-<token>`` part of the return address it was delivered to, or "".
        message_id: the report's own Message-ID (so the same report is never counted twice), or "".
        parser: ``rfc3464``, ``heuristic`` or "" (how the verdict was reached).
        reason: why a report is MALFORMED or NOT_A_BOUNCE, for the count of what was left.
    """

    kind: BounceKind
    recipients: tuple[FailedRecipient, ...] = ()
    original_message_id: str = ""
    notice_id: int | None = None
    verp_token: str = ""
    message_id: str = ""
    parser: str = ""
    reason: str = ""
    subject: str = field(default="", compare=False)


#: ``local+n-<token>@domain``: the token of a per-notice return address (see bounce_tracking.verp_address).
VERP_TOKEN = re.compile(r"\+n-([A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)@", re.ASCII)
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_REPLY_LINE = re.compile(r"(?m)^.*?\b([45]\d\d)[ -]([45]\.\d{1,3}\.\d{1,3})?.*$")
_CONTINUATION = re.compile(r"(?<=\S)\s+[45]\d\d[- ](?:[45]\.\d{1,3}\.\d{1,3}\s+)?")
#: Headers of the returned message quoted as text in a non-standard bounce ("Below this line is a copy …").
_QUOTED_NOTICE = re.compile(r"(?im)^X-Callslip-Notice:[ \t]*(\d{1,11})[ \t]*$")
_QUOTED_MESSAGE_ID = re.compile(r"(?im)^Message-ID:[ \t]*(<callslip\.[^\s<>]+>)[ \t]*$")
_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matic)?[- ]?(reply|response)|out of (the )?office|abwesenheit|r[ée]ponse automatique"
    r"|auto:|away from)",
    re.IGNORECASE,
)
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_HEADERS_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def _text(value: object) -> str:
    """A header value as one line of text (encoded words decoded where possible), never raising."""
    if value is None:
        return ""
    try:
        decoded = str(email.header.make_header(email.header.decode_header(str(value))))
    except Exception:  # a broken encoded word: keep the raw text
        decoded = str(value)
    return " ".join(decoded.split())


def _addr_spec(value: str) -> str:
    """``rfc822; <X@Y>`` or ``X@Y`` → ``x@y`` (lower-cased; "" when no address)."""
    value = value.split(";", 1)[1] if ";" in value else value
    value = value.strip().strip("<>").strip()
    return value.lower() if "@" in value else ""


def _after_type(value: str) -> str:
    """``smtp; 550 5.1.1 …`` → ``550 5.1.1 …`` (the diagnostic-type prefix dropped).

    A multi-line SMTP reply (``550-5.1.1 The email account … 550-5.1.1 double-checking …``) keeps its first
    code only, so the flag reads as one sentence.
    """
    head, sep, rest = value.partition(";")
    text = rest.strip() if sep and re.fullmatch(r"\s*[A-Za-z][\w-]*\s*", head) else value.strip()
    return _CONTINUATION.sub(" ", text)


def _verp_token(msg: email.message.Message) -> str:
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To"):
        for value in msg.get_all(name) or []:
            found = VERP_TOKEN.search(_text(value))
            if found:
                return found.group(1)
    return ""


def _returned_headers(report: email.message.Message) -> email.message.Message | None:
    """The headers of the message that bounced (from message/rfc822 or text/rfc822-headers), if returned."""
    for part in report.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
                return payload[0]
        elif ctype in ("text/rfc822-headers", "text/global-headers"):
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return _HEADERS_PARSER.parsebytes(raw)
    return None


def _dsn_blocks(part: email.message.Message) -> list[email.message.Message]:
    """The field blocks of a delivery-status part: [per-message, per-recipient …]."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, email.message.Message)]
    # A delivery-status part the parser left as text (e.g. base64-encoded): split it ourselves.
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    blocks = re.split(r"\r?\n\s*\r?\n", text.strip())
    return [_HEADERS_PARSER.parsebytes(b.encode("utf-8", "replace") + b"\n") for b in blocks if b.strip()]


def _from_dsn(msg: email.message.Message) -> tuple[FailedRecipient, ...] | None:
    """Every per-recipient block of the report's delivery-status part; ``None`` when it has none."""
    for part in msg.walk():
        if part.get_content_type() not in _DSN_TYPES:
            continue
        found: list[FailedRecipient] = []
        for block in _dsn_blocks(part)[1:] or _dsn_blocks(part):
            address = _addr_spec(_text(block.get("Final-Recipient"))) or _addr_spec(
                _text(block.get("Original-Recipient"))
            )
            action = _text(block.get("Action")).lower()
            if not address or not action:
                continue
            status_match = _STATUS.search(_text(block.get("Status")))
            found.append(
                FailedRecipient(
                    address=address,
                    action=action,
                    status=status_match.group(1) if status_match else "",
                    diagnostic=_after_type(_text(block.get("Diagnostic-Code"))),
                )
            )
        return tuple(found)
    return None


def _auto_reply(msg: email.message.Message) -> bool:
    auto = _text(msg.get("Auto-Submitted")).lower()
    if auto.startswith("auto-replied"):
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    if _text(msg.get("Precedence")).lower() in ("auto_reply", "auto-reply"):
        return True
    return bool(_AUTO_SUBJECT.match(_text(msg.get("Subject"))))


def _body_text(msg: email.message.Message) -> str:
    chunks: list[str] = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                chunks.append(raw.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(chunks)


def _heuristic(msg: email.message.Message) -> tuple[FailedRecipient, ...]:
    """Recipients flufl.bounce finds in a non-standard bounce, with the first SMTP reply in its text."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector tripping over a broken header: no recipient found, the message is left
        return ()
    body = _body_text(msg)
    reply = _REPLY_LINE.search(body)
    diagnostic = " ".join(reply.group(0).split())[:300] if reply else ""
    found: list[FailedRecipient] = []
    for addresses, default_status in ((permanent, "5.0.0"), (temporary, "4.0.0")):
        for raw in sorted(addresses):
            address = _addr_spec(raw.decode("utf-8", "replace"))
            if not address:
                continue
            status_match = _STATUS.search(diagnostic)
            status = status_match.group(1) if status_match and status_match.group(1)[0] == default_status[0] else ""
            found.append(FailedRecipient(address, "failed", status or default_status, diagnostic))
    return tuple(found)


def _int(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 12 else None


def parse_bounce(data: bytes) -> BounceReport:
    """Read one message from the bounce mailbox; never raises (a broken message is MALFORMED)."""
    try:
        return _parse(data)
    except Exception as exc:  # the stdlib parser and the heuristics on hostile bytes: never lose the cycle
        return BounceReport(BounceKind.MALFORMED, reason=f"unreadable message: {type(exc).__name__}: {exc}"[:300])


def _parse(data: bytes) -> BounceReport:
    if not data.strip():
        return BounceReport(BounceKind.MALFORMED, reason="empty message")
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    if not msg.keys():
        return BounceReport(BounceKind.MALFORMED, reason="no headers: not an e-mail message")
    returned = _returned_headers(msg)
    base = BounceReport(
        BounceKind.NOT_A_BOUNCE,
        original_message_id=_text(returned.get("Message-ID")) if returned is not None else "",
        notice_id=_int(_text(returned.get("X-Callslip-Notice"))) if returned is not None else None,
        verp_token=_verp_token(msg),
        message_id=_text(msg.get("Message-ID")),
        subject=_text(msg.get("Subject")),
    )
    dsn = _from_dsn(msg)
    if dsn is not None:
        failed = tuple(r for r in dsn if r.action == "failed")
        if failed:
            kind = BounceKind.HARD if any(r.hard for r in failed) else BounceKind.SOFT
            return replace(base, kind=kind, recipients=failed, parser="rfc3464")
        delayed = tuple(r for r in dsn if r.action == "delayed")
        if delayed:
            return replace(base, kind=BounceKind.DELAYED, recipients=delayed, parser="rfc3464")
        if dsn:
            actions = ", ".join(sorted({r.action for r in dsn}))
            return replace(base, parser="rfc3464", reason=f"a report of {actions}, not a failure")
        # A delivery-status part without one readable recipient: try the heuristics before giving up.
    if _auto_reply(msg):
        return replace(base, kind=BounceKind.AUTO_REPLY, reason="an automatic reply (out of office)")
    failed = _heuristic(msg)
    if failed:
        kind = BounceKind.HARD if any(r.hard for r in failed) else BounceKind.SOFT
        if returned is None:  # the returned message quoted as text: its Callslip headers, if they are there
            body = _body_text(msg)
            notice = _QUOTED_NOTICE.search(body)
            quoted_id = _QUOTED_MESSAGE_ID.search(body)
            base = replace(
                base,
                notice_id=_int(notice.group(1)) if notice else None,
                original_message_id=quoted_id.group(1) if quoted_id else "",
            )
        return replace(base, kind=kind, recipients=failed, parser="heuristic")
    if dsn is not None:
        return replace(base, kind=BounceKind.MALFORMED, reason="a delivery report without a readable recipient")
    if msg.get_content_type() == "multipart/report":
        return replace(base, kind=BounceKind.MALFORMED, reason="a delivery report whose MIME parts cannot be read")
    return replace(base, reason="not a delivery report")
