"""E-mail addresses as RFC 5322 address lists, and header text that cannot break a header.

Why this module: a To such as ``"O'Brien, Olivia" <olivia@example.org>`` is *one* recipient. Splitting on commas
made ``Olivia"`` and ``"O'Brien`` envelope recipients, which a real server qualified with its own domain and
"delivered". Every address a template produces is parsed here with the standard library's header registry
(:mod:`email.headerregistry`), the same parser the receiving side uses, and every header value is checked for
control characters (a line break would start a new header; a vertical tab or form feed reaches it raw).

Domains go out as A-labels (``xn--…``, plain ASCII that every server accepts); only a local part that is not
ASCII needs the server's SMTPUTF8 extension.
"""

from __future__ import annotations

import re
import unicodedata
from email import errors as email_errors
from email import policy
from email.headerregistry import Address
from functools import lru_cache

import idna

#: Names of the control characters staff are most likely to meet, for messages.
_CONTROL_NAMES = {
    "\n": "a line break",
    "\r": "a line break (carriage return)",
    "\t": "a tab",
    "\v": "a vertical tab",
    "\f": "a form feed",
    "\x00": "a NUL character",
    "\u2028": "a line separator (U+2028)",
    "\u2029": "a paragraph separator (U+2029)",
    "\x85": "a next-line character (U+0085)",
}


class AddressError(ValueError):
    """An address list that cannot be used: the message says which address and why."""


_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def control_characters(text: str) -> list[str]:
    """The control characters in ``text`` (each named once, in order): none may appear in a header.

    Unicode category Cc (C0, DEL, C1) plus the line and paragraph separators, which :meth:`str.splitlines`
    and some mail clients treat as line breaks.
    """
    found: list[str] = []
    if not _ANY_CONTROL.search(text):
        return found
    for ch in text:
        if unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029":
            name = _CONTROL_NAMES.get(ch, f"a control character (U+{ord(ch):04X})")
            if name not in found:
                found.append(name)
    return found


def check_header_text(text: str) -> None:
    """Refuse a header value with any control character.

    Raises:
        AddressError: ``text`` contains one (the message names which).
    """
    found = control_characters(text)
    if found:
        raise AddressError(f"contains {' and '.join(found)}, which cannot be in an e-mail header")


def _semicolons_to_commas(text: str) -> str:
    """Accept ``a@x; b@y`` (how Outlook and ILLiad staff separate recipients) as the list ``a@x, b@y``.

    Only semicolons outside quoted strings, comments and angle brackets are separators, and only when the
    text has no group (``Team: a@x, b@y;``), where RFC 5322 gives the semicolon its own meaning.
    """
    out: list[str] = []
    quoted = escaped = False
    angle = paren = 0
    top_level: list[int] = []
    for i, ch in enumerate(text):
        out.append(ch)
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "(":
            paren += 1
        elif ch == ")":
            paren = max(paren - 1, 0)
        elif paren:
            pass
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(angle - 1, 0)
        elif not angle and ch == ":":
            return text  # a group: leave the semicolons to the parser
        elif not angle and ch == ";":
            top_level.append(i)
    for i in top_level:
        out[i] = ","
    return "".join(out)


def a_label(domain: str) -> str:
    """The ASCII form of ``domain`` (``bücher.example`` → ``xn--bcher-kva.example``); ASCII is kept as is.

    Raises:
        AddressError: not a valid internationalised domain name.
    """
    if domain.isascii() or domain.startswith("["):
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise AddressError(f"the domain {domain!r} is not a valid international domain name ({exc})") from None


_ADDR_SPEC = (
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)
#: A bare ASCII dot-atom address (``ada.l+ill@example.org``), by far the most common To: built without the
#: parser, which costs ~0.2 ms; anything else goes through it.
_BARE = re.compile(_ADDR_SPEC)
#: The next most common: such an address after a plain name, words of letters, digits and ASCII atext separated
#: by single spaces (``Ada Lovelace <ada@example.org>``, ``Zoë Ångström <z@example.org>``), as :func:`mailbox`
#: writes every name that needs no quotes. The parser took ~0.1 ms for it, about a tenth of the System Manager's
#: CPU per e-mail; a quoted name, a comment or anything else still goes through the parser. A word's character is
#: a letter or digit of any script, or one of ASCII atext's symbols: two sets with nothing in common, so a name that
#: does not match is given up in linear time (overlapping alternatives, as ``(a|a)+``, backtrack exponentially).
_NAME_WORD = r"(?:[^\W_]|[!#$%&'*+/=?^_`{|}~-])+"
_NAMED = re.compile(rf"(?P<name>{_NAME_WORD}(?: {_NAME_WORD})*) <(?P<spec>{_ADDR_SPEC})>")


def _bare_address(text: str, display_name: str = "") -> Address | None:
    """``text`` as one mailbox (named ``display_name``) when it is a bare ASCII dot-atom address; else ``None``."""
    if ".." in text or not _BARE.fullmatch(text):
        return None
    username, _, domain = text.rpartition("@")
    return Address(display_name=display_name, username=username, domain=domain)


def _simple_mailbox(text: str) -> Address | None:
    """The one mailbox of ``text`` when it is a bare address or a plain name and address (the parser's answer
    for them, without it); ``None`` for anything else."""
    bare = _bare_address(text)
    if bare is not None:
        return bare
    named = _NAMED.fullmatch(text)
    return _bare_address(named["spec"], named["name"]) if named is not None else None


@lru_cache(maxsize=4096)
def parse_address_list(text: str) -> tuple[Address, ...]:
    """Every mailbox in ``text`` (an RFC 5322 address list; empty text gives none).

    Raises:
        AddressError: a control character, a list the parser flags as damaged, or an address without a domain;
            the message quotes the offending part.
    """
    check_header_text(text)
    if not text.strip():
        return ()
    simple = _simple_mailbox(text.strip())
    if simple is not None:
        return (simple,)
    return _parsed_address_list(text)


def _parsed_address_list(text: str) -> tuple[Address, ...]:
    """:func:`parse_address_list` by the standard library's parser (text already checked for control characters)."""
    try:
        header = policy.default.header_factory("To", _semicolons_to_commas(text))
        addresses: tuple[Address, ...] = tuple(header.addresses)
    except (IndexError, ValueError, AttributeError, TypeError, email_errors.HeaderParseError):
        # The standard library's parser fails on some inputs instead of flagging a defect: a display name that
        # ends in an unpaired ``<`` ("Olivia <") raises IndexError in CPython 3.11, a name like "0 :;0" (read
        # as a group) AttributeError, and " .@0" TypeError. Such text is not an address list; saying so is what a
        # defect would have done.
        raise AddressError(f"{text.strip()!r} is not a valid address list") from None
    for address in addresses:
        if not address.username or not address.domain:
            shown = address.username or address.display_name or address.addr_spec
            raise AddressError(f"{shown!r} is not an e-mail address (no @domain)")
    defects = [d for d in header.defects if not isinstance(d, email_errors.NonASCIILocalPartDefect)]
    if defects:
        raise AddressError(f"{text.strip()!r} is not a valid address list ({_defect_text(defects[0])})")
    for address in addresses:
        a_label(address.domain)
    return addresses


def _defect_text(defect: Exception) -> str:
    return str(defect).strip().rstrip(")") or type(defect).__name__


def parse_one(text: str) -> Address:
    """Exactly one mailbox.

    Raises:
        AddressError: ``text`` is not one valid address.
    """
    addresses = parse_address_list(text)
    if len(addresses) != 1:
        raise AddressError(f"{text.strip()!r} must be exactly one e-mail address, not {len(addresses)}")
    return addresses[0]


def needs_smtputf8(address: Address) -> bool:
    """True when the local part is not ASCII: only then must the server offer SMTPUTF8."""
    return not address.username.isascii()


def for_wire(address: Address, *, smtputf8: bool) -> Address:
    """``address`` as it goes out: domain as an A-label unless the message is sent with SMTPUTF8 anyway."""
    if smtputf8:
        return address
    return Address(address.display_name, address.username, a_label(address.domain))


def envelope_form(address: Address, *, smtputf8: bool) -> str:
    """The addr-spec for ``MAIL FROM``/``RCPT TO`` (quoted local part kept, domain as on the wire)."""
    return for_wire(Address(username=address.username, domain=address.domain), smtputf8=smtputf8).addr_spec


def formatted(address: Address) -> str:
    """One mailbox as RFC 5322 text (display name quoted when it needs it), e.g. for the stored copy."""
    return str(address)


def mailbox(display_name: str, addr_spec: str) -> str:
    """``"Name" <addr>`` quoted correctly whatever the name holds (commas, quotes, backslashes, any script);
    just ``addr`` when there is no name or no usable address."""
    name = " ".join(display_name.split())
    if not name or "@" not in addr_spec or control_characters(addr_spec):
        return addr_spec
    spec = addr_spec.strip()
    bare = _bare_address(spec, name)  # nothing for the parser to find (it took ~0.03 ms)
    if bare is not None:
        return str(bare)
    try:
        return str(Address(display_name=name, addr_spec=spec))
    except (ValueError, IndexError, TypeError, email_errors.HeaderParseError):
        return addr_spec
