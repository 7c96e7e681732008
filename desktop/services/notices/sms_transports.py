"""SMS transports: an HTTP provider (Twilio's Messages API) and e-mail-to-SMS gateways, behind one small interface.

Why an interface: libraries buy SMS from whoever their consortium has a contract with. The outbox only needs
"send this text to this number; tell me the provider's message id, or whether a failure is worth retrying",
so a new provider is one class. Every failure is classified here, where the provider's documentation is known:

- :class:`SmsPermanentError` — this number will never take this message (invalid or landline number, the patron
  unsubscribed, an unroutable destination): the notice moves on to the patron's next channel.
- :class:`SmsTemporaryError` — try again later (rate limit, provider outage, timeout, connection closed).
- :class:`SmsConfigurationError` — the library's account is wrong (bad credentials, sender not SMS-capable): no
  patron's fault, so no fallback for anybody; the notice waits and the desk's delivery banner says why.

A timeout after the request was sent is temporary although the provider may have accepted it: like an SMTP
connection lost after DATA, a retry may send the text a second time — at most once more, the same bound
``docs/DELIVERY.md`` gives for e-mail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import httpx
import phonenumbers

#: Twilio's REST API root; a test or a Twilio-compatible provider (e.g. SignalWire's compatibility API) sets its own.
TWILIO_API_BASE = "https://api.twilio.com"

#: Twilio error codes (https://www.twilio.com/docs/api/errors) that mean "this recipient cannot get this message".
TWILIO_PERMANENT_CODES = frozenset(
    {
        21211,  # invalid 'To' phone number
        21265,  # 'To' number cannot be a short code
        21408,  # permission to send to this region is not enabled
        21610,  # the recipient replied STOP (unsubscribed)
        21612,  # the 'To' number is not reachable via this route
        21614,  # 'To' number is not a valid mobile number (a landline)
        21617,  # body exceeds the 1600-character limit
        21635,  # 'To' number cannot be a landline
        30003,  # unreachable destination handset
        30005,  # unknown destination handset
        30006,  # landline or unreachable carrier
        30007,  # carrier filtered the message as spam
    }
)
#: Codes that mean the library's account or sender is wrong: no fallback for the patron, a banner for the desk.
TWILIO_CONFIGURATION_CODES = frozenset(
    {
        20003,  # authentication failed
        20404,  # the account (SID) or resource does not exist
        21212,  # invalid 'From' number
        21606,  # the 'From' number is not SMS-capable
        21608,  # trial account: the 'To' number is not verified
        21659,  # 'From' is not a Twilio number of this account
        21703,  # messaging service has no senders
    }
)
#: Codes worth retrying later.
TWILIO_TEMPORARY_CODES = frozenset({20429, 30001, 30008, 30022})


class SmsError(RuntimeError):
    """A text was not accepted; ``detail`` is the sentence staff read in the notice's history."""

    def __init__(self, detail: str, *, code: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


class SmsTemporaryError(SmsError):
    """Worth retrying later (the outbox's back-off and retry limit apply)."""


class SmsPermanentError(SmsError):
    """This recipient will never take this message: fall back to the patron's next channel."""


class SmsConfigurationError(SmsError):
    """The library's provider account or sender is wrong: nobody's notice can go until an administrator fixes it."""


@dataclass(frozen=True)
class SmsAccepted:
    """The provider took the message.

    Attributes:
        provider_message_id: the provider's id (Twilio's ``SM…`` SID), kept in the notice's history so a patron's
            "I never got it" can be traced in the provider's console.
        status: the provider's first status word (Twilio: ``queued``/``accepted``/``sent``).
    """

    provider_message_id: str
    status: str


class SmsTransport(Protocol):
    """What the outbox needs of an SMS provider."""

    def send(self, to_e164: str, body: str) -> SmsAccepted:
        """Send ``body`` to the number ``to_e164`` (E.164, e.g. ``+15551234567``) or raise an :class:`SmsError`."""
        ...  # pragma: no cover - protocol

    def close(self) -> None:
        """Release connections (the outbox keeps one transport per cycle)."""
        ...  # pragma: no cover - protocol


@dataclass(frozen=True)
class TwilioSettings:
    """Twilio's Messages API settings (Settings → SMS). The auth token lives in the keyring, never here.

    Attributes:
        account_sid: ``AC`` + 32 hex digits.
        sender: the ``From`` number (E.164) or a messaging service SID (``MG…``), whichever the library uses.
        api_base: the API root; Twilio's unless a compatible provider or a test server is used.
        timeout_seconds: connect/read timeout of one request.
    """

    account_sid: str
    sender: str
    api_base: str = TWILIO_API_BASE
    timeout_seconds: float = 15.0


_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")


def check_twilio_settings(settings: TwilioSettings) -> list[str]:
    """Problems an administrator must fix before the first text, as sentences (empty when all is well)."""
    problems = []
    if not _ACCOUNT_SID.match(settings.account_sid):
        problems.append("The Account SID must be AC followed by 32 hexadecimal digits (Twilio Console → Account).")
    if not _SERVICE_SID.match(settings.sender):
        try:
            parsed = phonenumbers.parse(settings.sender, None)
            valid = phonenumbers.is_valid_number(parsed)
        except phonenumbers.NumberParseException:
            valid = False
        if not valid:
            problems.append(
                "The sender must be a phone number in international form (+15551234567) or a Messaging Service "
                "SID (MG followed by 32 hexadecimal digits)."
            )
    if not settings.api_base.startswith(("https://", "http://127.0.0.1", "http://localhost", "http://[::1]")):
        problems.append("The API address must use https:// (plain http only to this computer, for testing).")
    return problems


class TwilioTransport:
    """Twilio's documented Messages API: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``.

    Form fields ``To``, ``Body`` and ``From`` or ``MessagingServiceSid``; HTTP Basic authentication with the
    account SID and auth token; a ``201`` answer carries the message's ``sid``; an error answer is JSON with
    ``code``, ``message``, ``more_info`` and ``status``.
    """

    def __init__(self, settings: TwilioSettings, auth_token: str, *, client: httpx.Client | None = None) -> None:
        self._settings = settings
        self._url = f"{settings.api_base.rstrip('/')}/2010-04-01/Accounts/{settings.account_sid}/Messages.json"
        self._client = client or httpx.Client(
            auth=(settings.account_sid, auth_token),
            timeout=httpx.Timeout(settings.timeout_seconds),
            headers={"User-Agent": "Callslip"},
        )

    def send(self, to_e164: str, body: str) -> SmsAccepted:
        """Send one text; see the module docstring for how failures are classified."""
        form = {"To": to_e164, "Body": body}
        if _SERVICE_SID.match(self._settings.sender):
            form["MessagingServiceSid"] = self._settings.sender
        else:
            form["From"] = self._settings.sender
        try:
            response = self._client.post(self._url, data=form)
        except httpx.TimeoutException as exc:
            raise SmsTemporaryError(f"SMS provider did not answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise SmsTemporaryError(f"SMS provider could not be reached: {type(exc).__name__}: {exc}") from None
        if response.status_code in (200, 201):
            try:
                payload = response.json()
                sid = str(payload["sid"])
            except (ValueError, KeyError, TypeError):
                # Accepted (2xx) but unreadable: the text may be on its way, so do not send it again.
                return SmsAccepted(
                    provider_message_id="", status=f"accepted, answer unreadable ({response.status_code})"
                )
            return SmsAccepted(provider_message_id=sid, status=str(payload.get("status", "")))
        raise _classify_twilio_error(response)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _classify_twilio_error(response: httpx.Response) -> SmsError:
    code: int | None = None
    message = response.reason_phrase or "error"
    try:
        payload = response.json()
        if isinstance(payload, dict):
            raw_code = payload.get("code")
            code = int(raw_code) if raw_code is not None else None
            message = str(payload.get("message") or message)
    except ValueError:
        pass
    detail = f"SMS provider refused the text: {response.status_code} {message}" + (f" (error {code})" if code else "")
    if code in TWILIO_CONFIGURATION_CODES or response.status_code in (401, 403):
        return SmsConfigurationError(detail, code=code)
    if code in TWILIO_PERMANENT_CODES:
        return SmsPermanentError(detail, code=code)
    if code in TWILIO_TEMPORARY_CODES or response.status_code == 429 or response.status_code >= 500:
        return SmsTemporaryError(detail, code=code)
    # Any other 4xx: the request itself was refused and sending it again will not change that.
    return SmsPermanentError(detail, code=code)


#: The carrier table shipped as the default (carrier name → e-mail-to-SMS gateway domain); staff edit it in
#: Settings. Carriers retire gateways without notice, which is why it is data and not code.
DEFAULT_SMS_GATEWAYS: dict[str, str] = {
    "AT&T": "txt.att.net",
    "Boost Mobile": "sms.myboostmobile.com",
    "C Spire": "cspire1.com",
    "Consumer Cellular": "mailmymobile.net",
    "Cricket": "sms.cricketwireless.net",
    "Google Fi": "msg.fi.google.com",
    "Metro by T-Mobile": "mymetropcs.com",
    "Mint Mobile": "mailmymobile.net",
    "T-Mobile": "tmomail.net",
    "US Cellular": "email.uscc.net",
    "Verizon": "vtext.com",
    "Virgin Mobile": "vmobl.com",
    "Xfinity Mobile": "vtext.com",
}

_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+$")


def parse_gateway_table(text: str) -> tuple[dict[str, str], list[str]]:
    """Read the editable carrier table: one ``Carrier name = gateway.domain`` per line, ``#`` comments.

    Returns the table and one sentence per line that could not be used (naming the line), so the Settings page
    can keep the good lines and show the rest instead of losing the administrator's edit.
    """
    table: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, domain = line.partition("=")
        name, domain = name.strip(), domain.strip().lower()
        if not sep or not name:
            problems.append(f"Line {number}: write it as 'Carrier name = gateway.domain'.")
        elif not _DOMAIN.match(domain):
            problems.append(f"Line {number}: '{domain}' is not a domain name.")
        elif name.casefold() in {known.casefold() for known in table}:
            problems.append(f"Line {number}: '{name}' is listed twice; the first line is used.")
        else:
            table[name] = domain
    return table, problems


def format_gateway_table(table: dict[str, str]) -> str:
    """The table as the Settings page shows it, sorted by carrier; :func:`parse_gateway_table` reads it back."""
    return "".join(f"{name} = {domain}\n" for name, domain in sorted(table.items(), key=lambda kv: kv[0].casefold()))


def gateway_address(number: str, carrier: str, table: dict[str, str], *, region: str = "US") -> str:
    """The e-mail address that reaches ``number`` as a text through ``carrier``'s gateway.

    Gateways take the national number's digits (``5551234567@vtext.com``), so the number is parsed with the
    library's region and checked. Raises :class:`SmsPermanentError` when the carrier is unknown or the number is
    invalid: the notice then falls back to the patron's next channel instead of bouncing later.
    """
    domain = next((d for name, d in table.items() if name.casefold() == carrier.strip().casefold()), None)
    if domain is None:
        raise SmsPermanentError(f"No e-mail-to-SMS gateway is known for the carrier '{carrier}'.")
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException as exc:
        raise SmsPermanentError(f"'{number}' is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise SmsPermanentError(f"'{number}' is not a valid phone number.")
    return f"{phonenumbers.national_significant_number(parsed)}@{domain}"
