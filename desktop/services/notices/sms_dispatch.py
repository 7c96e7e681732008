"""Sending text messages from the outbox: the SMS part of a notice, the transport chosen in Settings → SMS, and
what each outcome means for the notice.

Why a module of its own: the System Manager's cycle (:mod:`desktop.services.notices.dispatch`) claims, checks,
leases and records texts exactly as it does e-mails — same claims, same heartbeat, same one-transaction-per-result
recorder — so only what differs lives here: the text (the template's SMS part, plain text, cut to the segment
limit at a word boundary), the two transports behind one call (Twilio's Messages API, or an e-mail-to-SMS gateway
over the library's SMTP server), quiet hours, and the words staff read in the notice's history.

How a failure counts (the classes of :mod:`desktop.services.notices.sms_transports`):

- temporary (timeout, connection closed, 429, 5xx): retried with the outbox's back-off, up to ``MAX_ATTEMPTS``;
- permanent (an invalid or landline number, an unknown carrier): failed with the provider's sentence, so the
  patron's next channel can take over;
- configuration (a refused token, a sender that cannot send texts, no transport): nobody's fault but the
  account's — nothing is charged, the claim is given back and the cycle's problem says what to fix.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import Notification, Patron
from desktop.domain.sms_text import fit_to_segments, measure
from desktop.services.admin.sms_settings import TRANSPORTS, SmsSettings
from desktop.services.notices.delivery_problems import DeliveryProblem
from desktop.services.notices.mailer import (
    Outcome,
    SmtpConnectionError,
    SmtpTransport,
    build_message,
    message_id_for,
)
from desktop.services.notices.sms_transports import (
    SmsAccepted,
    SmsConfigurationError,
    SmsError,
    SmsPermanentError,
    SmsTemporaryError,
    TwilioTransport,
    check_twilio_settings,
    gateway_address,
)
from desktop.services.notices.templates import RenderedNotice, TemplateError, render_part

#: Texts claimed at once by one System Manager. Smaller than the e-mail batch: each text is an HTTPS round trip
#: to the provider (a tenth of a second or more), so a big claim would keep a backlog on one workstation while
#: the others sit idle.
SMS_BATCH_SIZE = 10


class SmsUnavailableError(SmsError):
    """Texts cannot go for now for every patron (no transport, no token, the gateway's SMTP server down).

    Like :class:`SmsConfigurationError` nothing is charged: the claim is given back and the cycle reports
    ``problem``.
    """

    def __init__(self, detail: str, problem: DeliveryProblem) -> None:
        super().__init__(detail)
        self.problem = problem


#: The problems only texts have (the e-mails' own retry times still wake the run loop while one lasts).
SMS_PROBLEMS = frozenset({DeliveryProblem.SMS_NOT_CONFIGURED, DeliveryProblem.SMS_REFUSED})


def problem_of(exc: SmsError) -> DeliveryProblem | None:
    """The delivery problem a failure stands for (``None``: the notice's own failure, charged to it)."""
    if isinstance(exc, SmsUnavailableError):
        return exc.problem
    if isinstance(exc, SmsConfigurationError):
        return DeliveryProblem.SMS_REFUSED
    return None


# ------------------------------------------------------------------------------------------------ the text


@dataclass(frozen=True)
class SmsText:
    """A notice's text as it goes out.

    Attributes:
        text: what is sent (cut to the segment limit when needed).
        segments: segments it takes.
        cut_from: segments the full text would have taken when it was cut (0: not cut).
    """

    text: str
    segments: int
    cut_from: int = 0

    def describe(self) -> str:
        """``2 segments`` or ``3 segments, cut from 5`` for the notice's history."""
        words = f"{self.segments} segment{'s' if self.segments != 1 else ''}"
        return words + (f", cut from {self.cut_from} at a word boundary" if self.cut_from else "")


def no_sms_part_reason(template_name: str) -> str:
    """Why a notice whose template has an empty SMS part sends no text (the next channel may take over)."""
    return (
        f"the {template_name!r} template has no SMS part, so it sends no text: write one in the Customization "
        "Manager, then Retry"
    )


def sms_text(template_name: str, source: str, context: dict[str, Any], max_segments: int) -> SmsText:
    """Render a template's SMS part and cut it to ``max_segments`` at a word boundary.

    Raises:
        TemplateError: the SMS part cannot be rendered, or renders empty (the template sends no text).
    """
    rendered = render_part(source, context, part="body_sms").strip()
    if not rendered:
        raise TemplateError(no_sms_part_reason(template_name), "body_sms")
    fitted = fit_to_segments(rendered, max_segments)
    return SmsText(fitted.text, fitted.length.segments, measure(rendered).segments if fitted.cut else 0)


def carriers_of(db: Database, notice_ids: list[int]) -> dict[int, str]:
    """Each notice's patron's mobile carrier (the gateway's key), read once per claimed batch."""
    if not notice_ids:
        return {}
    with db.read() as session:
        rows = session.execute(
            select(Notification.id, Patron.sms_carrier)
            .join(Patron, Patron.id == Notification.patron_id)
            .where(Notification.id.in_(notice_ids))
        ).all()
    return {int(notice_id): str(carrier or "") for notice_id, carrier in rows}


# ------------------------------------------------------------------------------------------------ transports


@dataclass(frozen=True)
class SmsOutgoing:
    """One text ready to send, as plain data.

    Attributes:
        number: the patron's number in E.164 form (the notice's ``to_address``).
        carrier: the patron's carrier (the gateway's key; unused by the HTTP provider).
        from_address: the gateway e-mail's From (the library's address); unused by the HTTP provider.
    """

    notice_id: int
    dedupe_key: str
    number: str
    carrier: str
    text: SmsText
    from_address: str = ""
    installation_id: str = ""


class SmsLine:
    """The transport Settings → SMS chose, opened once per cycle; :meth:`send` raises an :class:`SmsError`.

    Args:
        sms: the shared SMS settings.
        token: the HTTP provider's auth token (keyring, or ``CALLSLIP_SMS_AUTH_TOKEN`` when headless).
        settings: this computer's settings (the gateway's SMTP server and the phone region).
        password: the SMTP password (gateway only).
        ssl_context: the gateway's TLS context (tests trust their sink's certificate with it).

    The HTTP provider's requests time out after Settings' network timeout (``smtp_timeout``).

    Raises:
        SmsUnavailableError: texts are off, or the provider's settings or token are missing.
    """

    def __init__(self, sms: SmsSettings, token: str | None, settings: Settings, password: str | None, *,
                 ssl_context: ssl.SSLContext | None = None) -> None:  # fmt: skip
        self._sms, self._settings = sms, settings
        self._twilio: TwilioTransport | None = None
        self._smtp: SmtpTransport | None = None
        self._opened = False
        if sms.transport == "twilio":
            problems = check_twilio_settings(sms.twilio())
            if problems:
                raise SmsUnavailableError("the SMS provider's settings are incomplete: " + " ".join(problems),
                                     DeliveryProblem.SMS_NOT_CONFIGURED)  # fmt: skip
            if not token:
                raise SmsUnavailableError(
                    "no auth token for the SMS provider on this computer: enter it in Customization Manager → "
                    "SMS (or set CALLSLIP_SMS_AUTH_TOKEN for callslip-manager)",
                    DeliveryProblem.SMS_NOT_CONFIGURED,
                )
            # One network timeout for the whole System Manager (Settings → timeout), the SMTP server's and the
            # provider's alike: a provider that does not answer in time is a temporary failure.
            self._twilio = TwilioTransport(replace(sms.twilio(), timeout_seconds=settings.smtp_timeout), token)
        elif sms.transport == "gateway":
            if not settings.smtp_host:
                raise SmsUnavailableError(
                    "the e-mail-to-SMS gateway sends through the library's SMTP server, and none is set up in Settings",
                    DeliveryProblem.SMS_NOT_CONFIGURED,
                )
            self._smtp = SmtpTransport(settings, password, ssl_context=ssl_context)
        else:
            raise SmsUnavailableError(f"text messages are {TRANSPORTS['off']!r} in Customization Manager → SMS",
                                 DeliveryProblem.SMS_NOT_CONFIGURED)  # fmt: skip

    @property
    def name(self) -> str:
        """How the history names the transport."""
        return "the SMS provider" if self._twilio is not None else "the e-mail-to-SMS gateway"

    def send(self, outgoing: SmsOutgoing) -> SmsAccepted:
        """Send one text; the accepted answer carries the provider's id (the gateway e-mail's Message-ID)."""
        if self._twilio is not None:
            return self._twilio.send(outgoing.number, outgoing.text.text)
        return self._send_gateway(outgoing)

    def _send_gateway(self, outgoing: SmsOutgoing) -> SmsAccepted:
        assert self._smtp is not None
        address = gateway_address(outgoing.number, outgoing.carrier, self._sms.gateways,
                                  region=self._settings.phone_region)  # fmt: skip
        sender = outgoing.from_address or self._settings.smtp_from
        message_id = message_id_for(outgoing.notice_id, outgoing.dedupe_key, sender, outgoing.installation_id)
        # Plain text only and no subject: a gateway turns the subject and any HTML into characters of the text.
        rendered = RenderedNotice(from_name="", from_address=sender, to=(address,), cc=(), bcc=(), subject="",
                                  body_text=outgoing.text.text + "\n", body_html="")  # fmt: skip
        try:
            message = build_message(rendered, notice_id=outgoing.notice_id, message_id=message_id,
                                    settings=self._settings, to=(address,))  # fmt: skip
        except ValueError as exc:
            if "From" in str(exc):
                raise SmsUnavailableError(f"the gateway e-mail cannot be built: {exc}",
                                     DeliveryProblem.NO_FROM_ADDRESS) from None  # fmt: skip
            raise SmsPermanentError(f"the gateway e-mail cannot be built: {exc}") from None
        if not self._opened:
            try:
                self._smtp.open()
            except SmtpConnectionError as exc:
                raise SmsUnavailableError(f"the e-mail-to-SMS gateway's SMTP server: {exc}", exc.problem) from None
            self._opened = True
        result = self._smtp.send(message)
        self._opened = not result.connection_lost
        if result.outcome is Outcome.SENT:
            return SmsAccepted(provider_message_id=message_id, status=f"gateway {address}: {result.reply}")
        if result.server_wide and not result.ambiguous:
            raise SmsUnavailableError(f"the SMTP server refused every message for now ({result.reply})",
                                 DeliveryProblem.SERVER_BUSY)  # fmt: skip
        detail = f"the gateway e-mail to {address} was refused: {result.reply}"
        if result.outcome is Outcome.PERMANENT:
            raise SmsPermanentError(detail)
        raise SmsTemporaryError(detail)

    def close(self) -> None:
        """Close the HTTP pool or the SMTP session."""
        if self._twilio is not None:
            self._twilio.close()
        if self._smtp is not None:
            self._smtp.close()


# ------------------------------------------------------------------------------------------------ quiet hours


def quiet_until(sms: SmsSettings, now: datetime) -> datetime | None:
    """When texts may go again (UTC) if ``now`` is inside the quiet hours in this computer's local time, else None.

    The library's local time is this computer's zone: the System Manager runs at the library.
    """
    quiet = sms.quiet_hours
    local = now.astimezone()
    if not quiet.is_quiet(local):
        return None
    return quiet.next_open(local).astimezone(UTC)


def sent_note(template_name: str, number: str, accepted: SmsAccepted, transport: str) -> str:
    """The Tracking note of a request whose text was accepted (ILLiad's status names no SMS, so the note does)."""
    ident = accepted.provider_message_id or "no id given"
    return f"text message ({template_name}) to {number} accepted by {transport}: {ident}"
