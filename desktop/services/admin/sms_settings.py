"""The library's SMS settings, shared by every workstation: which transport, its account, limits, quiet hours.

Stored as one JSON value (``sms``) in the key-value ``system_settings`` table, like the shelf settings, because
the System Manager that sends texts may run on any computer. The provider's auth token is a secret: it lives in
the OS keyring of each computer that sends (service ``callslip-sms-provider``, account = the Account SID), or in
``CALLSLIP_SMS_AUTH_TOKEN`` for a headless System Manager — never in the database.

"Send Test SMS" uses the same transport the outbox will use, so an administrator sees the provider's own answer
(a wrong token, a sender that cannot send texts) before any patron's notice depends on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from desktop.db.engine import Database
from desktop.domain.clock import utcnow
from desktop.domain.quiet_hours import QuietHours, QuietHoursError, parse_time
from desktop.domain.sms_text import DEFAULT_MAX_SEGMENTS, fit_to_segments
from desktop.secrets import get_secret, set_secret
from desktop.services.admin.json_setting import read_json_setting, store_json_setting
from desktop.services.errors import ValidationError
from desktop.services.notices.sms_transports import (
    DEFAULT_SMS_GATEWAYS,
    TWILIO_API_BASE,
    SmsAccepted,
    SmsError,
    TwilioSettings,
    TwilioTransport,
    check_twilio_settings,
)

SMS_KEY = "sms"
SMS_KEYRING_SERVICE = "callslip-sms-provider"
SMS_AUTH_TOKEN_ENV = "CALLSLIP_SMS_AUTH_TOKEN"
MAX_SEGMENTS_LIMIT = 10  # carriers refuse longer concatenations; Twilio's own limit is 1600 characters

Transport = Literal["off", "gateway", "twilio"]
TRANSPORTS: dict[str, str] = {
    "off": "Off (no text messages)",
    "gateway": "E-mail-to-SMS gateway (through the library's SMTP server)",
    "twilio": "Twilio Messages API",
}


@dataclass(frozen=True)
class SmsSettings:
    """What the SMS page of the Customization Manager edits.

    Attributes:
        transport: ``off``, ``gateway`` or ``twilio``.
        account_sid / sender / api_base: Twilio's settings (see :class:`TwilioSettings`).
        max_segments: texts longer than this are cut at a word boundary when sent.
        quiet_start / quiet_end: no texts between these local times (HH:MM; equal means none).
        gateways: the carrier table for the e-mail gateway (carrier name → domain).
    """

    transport: Transport = "off"
    account_sid: str = ""
    sender: str = ""
    api_base: str = TWILIO_API_BASE
    max_segments: int = DEFAULT_MAX_SEGMENTS
    quiet_start: str = "21:00"
    quiet_end: str = "08:00"
    gateways: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SMS_GATEWAYS))

    @property
    def quiet_hours(self) -> QuietHours:
        """The quiet window (none when the stored times are damaged: a text late beats no text)."""
        try:
            return QuietHours(parse_time(self.quiet_start), parse_time(self.quiet_end))
        except QuietHoursError:
            return QuietHours(parse_time("00:00"), parse_time("00:00"))

    def twilio(self) -> TwilioSettings:
        """The provider settings for :class:`TwilioTransport`."""
        return TwilioSettings(self.account_sid.strip(), self.sender.strip(), api_base=self.api_base.strip())


def sms_settings_from(value: Any) -> SmsSettings:
    """Stored JSON → settings; unknown or damaged entries fall back to the defaults (texts off if the transport is)."""
    if not isinstance(value, dict):
        return SmsSettings()
    defaults = SmsSettings()
    transport = value.get("transport", "off")
    gateways = value.get("gateways")
    try:
        max_segments = int(value.get("max_segments", defaults.max_segments))
    except (TypeError, ValueError):
        max_segments = defaults.max_segments
    return SmsSettings(
        transport=transport if transport in TRANSPORTS else "off",
        account_sid=str(value.get("account_sid", "")),
        sender=str(value.get("sender", "")),
        api_base=str(value.get("api_base", defaults.api_base)) or defaults.api_base,
        max_segments=max(1, min(MAX_SEGMENTS_LIMIT, max_segments)),
        quiet_start=str(value.get("quiet_start", defaults.quiet_start)),
        quiet_end=str(value.get("quiet_end", defaults.quiet_end)),
        gateways=(
            {str(k): str(v) for k, v in gateways.items()} if isinstance(gateways, dict) else dict(defaults.gateways)
        ),
    )


def _as_json(settings: SmsSettings) -> dict[str, Any]:
    return {
        "transport": settings.transport,
        "account_sid": settings.account_sid.strip(),
        "sender": settings.sender.strip(),
        "api_base": settings.api_base.strip(),
        "max_segments": settings.max_segments,
        "quiet_start": settings.quiet_start.strip(),
        "quiet_end": settings.quiet_end.strip(),
        "gateways": dict(sorted(settings.gateways.items())),
    }


def load_sms_settings(db: Database) -> SmsSettings:
    """The shared SMS settings (the defaults when never saved or damaged)."""
    with db.read() as session:
        return read_json_setting(session, SMS_KEY, sms_settings_from)


def validate_sms(settings: SmsSettings) -> dict[str, str]:
    """Problems keyed by field; empty when the settings may be saved."""
    problems: dict[str, str] = {}
    if settings.transport == "twilio":
        found = check_twilio_settings(settings.twilio())
        if found:
            problems["twilio"] = " ".join(found)
    if settings.transport == "gateway" and not settings.gateways:
        problems["gateways"] = "The gateway needs at least one carrier in the carrier table."
    if not 1 <= settings.max_segments <= MAX_SEGMENTS_LIMIT:
        problems["max_segments"] = f"The segment limit must be between 1 and {MAX_SEGMENTS_LIMIT}."
    for name in ("quiet_start", "quiet_end"):
        try:
            parse_time(getattr(settings, name))
        except QuietHoursError as exc:
            problems[name] = f"Quiet hours: {exc}."
    return problems


def save_sms_settings(
    db: Database, original: SmsSettings, new: SmsSettings, *, changed_by: str, now: datetime | None = None
) -> SmsSettings:
    """Store ``new`` unless another workstation saved different settings since ``original`` was loaded.

    Raises:
        ValidationError: a problem from :func:`validate_sms`; nothing saved.
        ConcurrentEditError: another workstation changed them meanwhile; nothing saved.
    """
    problems = validate_sms(new)
    if problems:
        raise ValidationError("SMS settings not saved:\n" + "\n".join(f"• {m}" for m in problems.values()), problems)
    store_json_setting(db, SMS_KEY, original=_as_json(original), new=_as_json(new),
                       normalise=lambda data: _as_json(sms_settings_from(data)), what="the SMS settings",
                       changed_by=changed_by, now=now or utcnow())  # fmt: skip
    return load_sms_settings(db)


def auth_token(settings: SmsSettings, *, allow_env: bool) -> str | None:
    """The provider's auth token: the service environment (headless only) or this computer's keyring."""
    if allow_env and os.environ.get(SMS_AUTH_TOKEN_ENV):
        return os.environ[SMS_AUTH_TOKEN_ENV]
    if not settings.account_sid.strip():
        return None
    return get_secret(SMS_KEYRING_SERVICE, settings.account_sid.strip())


def store_auth_token(settings: SmsSettings, token: str) -> None:
    """Keep the auth token in this computer's keyring (an empty token removes it)."""
    set_secret(SMS_KEYRING_SERVICE, settings.account_sid.strip(), token)


@dataclass(frozen=True)
class TestSmsResult:
    """What "Send Test SMS" shows: the provider's answer, or why nothing was sent."""

    ok: bool
    message: str
    accepted: SmsAccepted | None = None


TEST_TEXT = "Callslip test message: your library's text notices can reach this phone."


def send_test_sms(settings: SmsSettings, token: str | None, to_e164: str) -> TestSmsResult:
    """Send one test text through the HTTP provider as the outbox would (runs on a worker thread).

    The gateway transport is tested with Send Test E-mail to the gateway address (it is plain e-mail), so only
    the provider is tested here.
    """
    if settings.transport != "twilio":
        return TestSmsResult(False, "Choose the Twilio Messages API to send a test text from here.")
    problems = validate_sms(settings)
    if problems:
        return TestSmsResult(False, " ".join(problems.values()))
    if not token:
        return TestSmsResult(False, "Enter the Auth Token (Twilio Console → Account → API keys & tokens).")
    text = fit_to_segments(TEST_TEXT, settings.max_segments).text
    transport = TwilioTransport(settings.twilio(), token)
    try:
        accepted = transport.send(to_e164.strip(), text)
    except SmsError as exc:
        return TestSmsResult(False, exc.detail)
    finally:
        transport.close()
    return TestSmsResult(True, f"Sent: the provider accepted it as {accepted.provider_message_id}.", accepted)
