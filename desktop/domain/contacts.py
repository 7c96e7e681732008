"""Contact points (e-mail, phone, fax, web) and their validation and normalisation.

Each validator returns a :class:`Normalized` value or raises :class:`ContactError` with a message that can be
shown next to the field as it is: staff must see *why* a value is refused, not just that it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email


class ContactKind(StrEnum):
    """Kinds of contact point on the Contact Info tab; ``address`` is only a location permission."""

    EMAIL = "email"
    PHONE = "phone"
    FAX = "fax"
    WEB = "web"

    @property
    def label(self) -> str:
        """Human name shown in menus and read by screen readers."""
        return _LABELS[self]


_LABELS = {
    ContactKind.EMAIL: "E-mail",
    ContactKind.PHONE: "Phone",
    ContactKind.FAX: "Fax",
    ContactKind.WEB: "Web site",
}

#: Location permissions also cover the postal address, which is not a contact point row.
ADDRESS_PERMISSION = "address"
ALL_PERMISSIONS: tuple[str, ...] = (*(k.value for k in ContactKind), ADDRESS_PERMISSION)

MAX_EMAIL_LENGTH = 254
MAX_URL_LENGTH = 2000
#: Longest phone input looked at, extension and spacing included: checked before any parsing, because the
#: extension pattern and the phone library both slow down with the length of what they are given (a number
#: padded with 40,000 spaces took 34 s), and this runs on every keystroke of the Contact Card and the search box.
MAX_PHONE_INPUT = 64


def person_name(first_name: str, last_name: str, username: str) -> str:
    """ "First Last", or the user name when both are blank: how a patron is named to staff and in notices."""
    return " ".join(p for p in (first_name, last_name) if p) or username


class ContactError(ValueError):
    """A contact value that cannot be stored, with a message fit for the person typing it."""


@dataclass(frozen=True, slots=True)
class Normalized:
    """A validated contact value.

    Attributes:
        display: what staff typed, tidied (kept so nothing the patron gave is rewritten behind their back).
        normalized: the canonical form used for search, de-duplication and sending (E.164 for phones).
        extension: phone extension kept apart from the number, or empty.
    """

    display: str
    normalized: str
    extension: str = ""


def normalize_email(text: str) -> Normalized:
    """Validate e-mail syntax (no DNS lookups) and normalise the domain to lower case.

    The local part keeps its case (RFC 5321 says it may matter) but the comparison key used for duplicate
    detection is fully case-folded, because in practice no library's patrons differ only by case.
    """
    value = text.strip()
    if not value:
        raise ContactError("Enter an e-mail address.")
    if len(value) > MAX_EMAIL_LENGTH:
        raise ContactError(f"An e-mail address is at most {MAX_EMAIL_LENGTH} characters.")
    if any(ch.isspace() for ch in value):
        raise ContactError("An e-mail address cannot contain spaces.")
    local, _, domain = value.rpartition("@")
    if value.isascii() and _ASCII_LOCAL_PART.fullmatch(local):
        # The common case, an ASCII address: email_validator checks such a local part for nothing more than this
        # pattern and keeps it as it is, so only the domain needs it, once per domain. Its per-character IDNA
        # checks of each patron's domain were a tenth of an ILLiad import.
        normalized = f"{local}@{_normalized_domain(domain)}"
    else:
        normalized = _validated(value)
    return Normalized(display=normalized, normalized=email_key(normalized))


#: An ASCII dot-atom local part of at most 64 characters (RFC 5321's limit; a longer one, rare, is left to
#: email_validator, whichever way it judges it).
_ASCII_LOCAL_PART = re.compile(r"(?=.{1,64}$)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _validated(value: str) -> str:
    try:
        return str(validate_email(value, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise ContactError(f"Not a valid e-mail address: {exc}") from None


@lru_cache(maxsize=1024)
def _normalized_domain(domain: str) -> str:
    """``domain`` as email_validator normalises it after a valid local part (its checks and its messages)."""
    return _validated(f"a@{domain}").rpartition("@")[2]


def email_key(address: str) -> str:
    """Comparison key for e-mail addresses (duplicates across households, search)."""
    return address.strip().casefold()


_EXTENSION_RE = re.compile(r"\s*(?:ext\.?|extension|x|#)\s*(\d{1,7})\s*$", re.IGNORECASE)


def normalize_phone(text: str, region: str = "US", extension: str = "") -> Normalized:
    """Parse a phone or fax number to E.164, with ``region`` for numbers written without a country code.

    An extension may be typed after the number (``x123``, ``ext. 123``) or given separately; it is kept apart
    because E.164 has no room for it.
    """
    if len(text) > MAX_PHONE_INPUT * 4 or len(extension) > MAX_PHONE_INPUT:  # before strip(): bounded work
        raise ContactError(f"A phone number is at most {MAX_PHONE_INPUT} characters, extension included.")
    value = text.strip()
    if not value:
        raise ContactError("Enter a phone number.")
    if len(value) > MAX_PHONE_INPUT:
        raise ContactError(f"A phone number is at most {MAX_PHONE_INPUT} characters, extension included.")
    ext = extension.strip()
    match = _EXTENSION_RE.search(value)
    if match:
        if ext and ext != match.group(1):
            raise ContactError("The extension is given twice with different values.")
        ext = match.group(1)
        value = value[: match.start()].strip()
    if ext and not (ext.isascii() and ext.isdigit()):
        raise ContactError("An extension is digits only.")
    if len(value) > 40:
        raise ContactError("A phone number is at most 40 characters.")
    try:
        number = phonenumbers.parse(value, region.upper() or None)
    except phonenumbers.NumberParseException as exc:
        raise ContactError(f"Not a phone number: {_PARSE_REASONS.get(exc.error_type, str(exc))}") from None
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or region.upper()
        raise ContactError(f"Not a valid phone number for region {where}: check the digits and the area code.")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Normalized(display=format_phone(e164, region), normalized=e164, extension=ext)


_PARSE_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code (start with + and the code).",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "it has no digits or has letters in it.",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too few digits.",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too few digits after the international prefix.",
    phonenumbers.NumberParseException.TOO_LONG: "too many digits.",
}


def format_phone(e164: str, region: str = "US", extension: str = "") -> str:
    """Format an E.164 number for people: national format at home, international abroad."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    home = phonenumbers.region_code_for_number(number) == region.upper()
    fmt = phonenumbers.PhoneNumberFormat.NATIONAL if home else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    text = phonenumbers.format_number(number, fmt)
    return f"{text} ext. {extension}" if extension else text


def phone_search_key(text: str, region: str = "US") -> str | None:
    """E.164 form of digits typed in a search box, or ``None`` when they are not a phone number."""
    if len(text) > MAX_PHONE_INPUT:  # not a phone number, and not worth parsing
        return None
    try:
        return normalize_phone(text, region).normalized
    except ContactError:
        return None


def normalize_url(text: str) -> Normalized:
    """Validate a web address; ``example.org`` is taken as ``https://example.org``."""
    value = text.strip()
    if not value:
        raise ContactError("Enter a web address.")
    if len(value) > MAX_URL_LENGTH:
        raise ContactError(f"A web address is at most {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() for ch in value):
        raise ContactError("A web address cannot contain spaces.")
    if "://" not in value:
        value = "https://" + value
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError as exc:  # unbalanced brackets and the like
        raise ContactError(f"Not a web address: {exc}.") from None
    if parts.scheme.lower() not in {"http", "https"}:
        raise ContactError("A web address must start with http:// or https://.")
    if not host:
        raise ContactError("A web address needs a host name, such as library.example.org.")
    if "." not in host and host != "localhost":
        raise ContactError(f"{host!r} is not a full host name (it has no dot).")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ContactError("The port in the web address is not a number from 0 to 65535.") from None
    canonical = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, parts.fragment))
    return Normalized(display=value, normalized=canonical)


def normalize(kind: ContactKind, text: str, region: str = "US", extension: str = "") -> Normalized:
    """Validate ``text`` as a contact point of ``kind``."""
    if kind is ContactKind.EMAIL:
        return normalize_email(text)
    if kind is ContactKind.WEB:
        return normalize_url(text)
    return normalize_phone(text, region, extension)
