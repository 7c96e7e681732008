"""Contact-point validation and normalisation, with examples and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from desktop.domain.contacts import (
    ContactError,
    ContactKind,
    email_key,
    format_phone,
    normalize,
    normalize_email,
    normalize_phone,
    normalize_url,
    phone_search_key,
)


@pytest.mark.parametrize("text", ["(217) 555-0143", "217.555.0143", "+1 217 555 0143", "2175550143", " 217-555-0143 "])
def test_us_numbers_in_any_format_give_one_e164(text: str) -> None:
    assert normalize_phone(text, "US").normalized == "+12175550143"


def test_extension_is_kept_apart() -> None:
    value = normalize_phone("217-555-0143 ext. 42", "US")
    assert (value.normalized, value.extension) == ("+12175550143", "42")
    assert normalize_phone("217-555-0143 x7", "US").extension == "7"
    with pytest.raises(ContactError, match="twice"):
        normalize_phone("217-555-0143 x7", "US", extension="8")


def test_foreign_number_with_country_code() -> None:
    value = normalize_phone("+44 20 7946 0958", "US")
    assert value.normalized == "+442079460958"
    assert value.display == "+44 20 7946 0958"


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "Enter a phone number"), ("123", "Not a valid phone number"), ("call me", "Not a phone number")],
)
def test_bad_phone_numbers_say_why(text: str, message: str) -> None:
    with pytest.raises(ContactError, match=message):
        normalize_phone(text, "US")


def test_email_domain_is_lowercased_and_key_casefolded() -> None:
    value = normalize_email("  Ada.Lovelace@Example.ORG ")
    assert value.display == "Ada.Lovelace@example.org"
    assert value.normalized == "ada.lovelace@example.org"


@pytest.mark.parametrize("text", ["", "no-at-sign", "a@b", "two@@example.org", "sp ace@example.org"])
def test_bad_emails_are_refused_with_a_message(text: str) -> None:
    with pytest.raises(ContactError) as info:
        normalize_email(text)
    assert str(info.value)


def test_urls() -> None:
    assert normalize_url("library.example.org/x").normalized == "https://library.example.org/x"
    for bad, message in [("ftp://x.org", "http"), ("https://", "host"), ("http://intranet", "dot")]:
        with pytest.raises(ContactError, match=message):
            normalize_url(bad)


def test_search_key_accepts_digits_in_any_format() -> None:
    assert phone_search_key("217 555 0143") == "+12175550143"
    assert phone_search_key("Lovelace") is None


# ----------------------------------------------------------------------------------------------- properties

us_numbers = st.builds(
    lambda area, exchange, line: f"{area}{exchange}{line:04d}",
    st.sampled_from(["217", "312", "415", "212", "617"]),
    st.sampled_from(["555", "234", "867", "346"]),
    st.integers(min_value=100, max_value=9999),
)
separators = st.sampled_from(["", " ", "-", ".", "  "])


@settings(max_examples=200, deadline=None)
@given(us_numbers, separators, st.booleans())
def test_phone_normalisation_ignores_formatting(digits: str, sep: str, parens: bool) -> None:
    area, rest = digits[:3], digits[3:]
    typed = f"({area}){sep}{rest[:3]}{sep}{rest[3:]}" if parens else f"{area}{sep}{rest[:3]}{sep}{rest[3:]}"
    try:
        plain = normalize_phone(digits, "US")
    except ContactError:
        with pytest.raises(ContactError):
            normalize_phone(typed, "US")
        return
    assert normalize_phone(typed, "US").normalized == plain.normalized == f"+1{digits}"


@settings(max_examples=200, deadline=None)
@given(us_numbers)
def test_phone_normalisation_is_idempotent(digits: str) -> None:
    try:
        first = normalize_phone(digits, "US")
    except ContactError:
        return
    again = normalize_phone(first.normalized, "US")
    assert again.normalized == first.normalized
    assert normalize_phone(format_phone(first.normalized, "US"), "US").normalized == first.normalized


local_parts = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789._-+", min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(local_parts, st.sampled_from(["example.org", "Example.COM", "lib.example.edu"]))
def test_email_normalisation_is_idempotent_or_refused(local: str, domain: str) -> None:
    try:
        first = normalize_email(f"{local}@{domain}")
    except ContactError as exc:
        assert str(exc)
        return
    assert normalize_email(first.display) == first
    assert first.normalized == email_key(first.display)
    assert first.display.split("@")[1] == domain.lower()


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_either_valid_or_refused_with_message(text: str) -> None:
    for kind in ContactKind:
        try:
            value = normalize(kind, text, "US")
        except ContactError as exc:
            assert str(exc).strip()
        else:
            assert value.normalized


_EMAIL_LOCAL = st.text(st.sampled_from("aZ09.-_+!#'=?`{|}~\"\\ @(),:;<>[]é"), min_size=0, max_size=70)
_EMAIL_DOMAIN = st.lists(
    st.sampled_from([*"aZ09.-_ ]éß\u00a0", "example.org", "xn--bcher-kva.de", "localhost", "test", "a" * 64]),
    max_size=6,
).map("".join)


@example(local="a" * 64, domain="example.org")
@example(local="a" * 65, domain="example.org")
@example(local="ada.lovelace", domain="Example.ORG")
@example(local="a", domain="b" * 64 + ".org")
@given(local=_EMAIL_LOCAL, domain=_EMAIL_DOMAIN)
@settings(max_examples=400)
def test_an_ascii_address_is_judged_as_email_validator_judges_it(local: str, domain: str) -> None:
    """The fast path (an ASCII local part checked by pattern, each domain validated once) gives exactly
    email_validator's normalised address, or refuses with its message, whatever the parts are."""
    from email_validator import EmailNotValidError, validate_email

    text = f"{local}@{domain}"
    if not text.strip() or len(text.strip()) > 254 or any(ch.isspace() for ch in text.strip()):
        return  # refused before either path with the same messages
    try:
        expected: str | None = validate_email(text.strip(), check_deliverability=False).normalized
        reason = ""
    except EmailNotValidError as exc:
        expected, reason = None, str(exc)
    try:
        got = normalize_email(text).display
    except ContactError as exc:
        assert expected is None and reason in str(exc), (text, reason, exc)
        return
    assert got == expected, text
