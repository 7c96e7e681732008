"""Bounce parsing on real-shaped reports (``tests/bounces/``): RFC 3464 first, flufl.bounce for the rest, and
nothing that is not a failure counted as one."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desktop.services.notices.bounce_parsing import BounceKind, FailedRecipient, parse_bounce

BOUNCES = Path(__file__).parent / "bounces"


def read(name: str) -> bytes:
    return (BOUNCES / name).read_bytes()


def test_postfix_rfc3464_report_gives_recipient_status_diagnostic_and_the_notice() -> None:
    report = parse_bounce(read("postfix_rfc3464.eml"))
    assert report.kind is BounceKind.HARD
    assert report.parser == "rfc3464"
    (failed,) = report.recipients
    assert failed.address == "nobody@patrons.example.org"
    assert failed.status == "5.1.1"
    assert failed.diagnostic.startswith("550 5.1.1 <nobody@patrons.example.org>: Recipient address rejected")
    assert report.notice_id == 42
    assert report.original_message_id == "<callslip.0123456789abcdef.42.a1b2c3d4e5f6@library.example.edu>"
    assert report.verp_token == "42-3f9a1c0b"
    assert report.message_id == "<20261130075012.4Fb1c2D3e4@mail.library.example.edu>"


def test_exchange_report_with_returned_headers_only() -> None:
    report = parse_bounce(read("exchange.eml"))
    assert report.kind is BounceKind.HARD
    (failed,) = report.recipients
    assert failed.address == "j.smith@campus.example.edu"  # lower-cased for matching
    assert failed.status == "5.1.10"
    assert failed.summary() == ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup")
    assert report.notice_id == 43
    assert report.verp_token == ""  # sent without VERP: matched by Message-ID and recipient


def test_gmail_report_multi_line_reply_reads_as_one_sentence() -> None:
    report = parse_bounce(read("gmail.eml"))
    assert report.kind is BounceKind.HARD
    (failed,) = report.recipients
    assert failed.address == "no.such.reader@gmail.com"
    assert failed.status == "5.1.1"
    assert "550-5.1.1 double-checking" not in failed.diagnostic
    assert failed.diagnostic.startswith("550-5.1.1 The email account that you tried to reach does not exist.")
    assert report.original_message_id == "<callslip.0123456789abcdef.44.998877665544@library.example.edu>"


def test_delayed_report_is_not_a_failure() -> None:
    report = parse_bounce(read("delayed.eml"))
    assert report.kind is BounceKind.DELAYED
    assert not report.kind.is_failure
    assert report.recipients[0].status == "4.4.1"


def test_out_of_office_reply_is_not_a_failure() -> None:
    report = parse_bounce(read("out_of_office.eml"))
    assert report.kind is BounceKind.AUTO_REPLY
    assert not report.kind.is_failure
    assert report.recipients == ()


def test_non_standard_bounce_names_only_the_failed_address_not_the_ones_it_quotes() -> None:
    report = parse_bounce(read("quoting_another_address.eml"))
    assert report.kind is BounceKind.HARD
    assert report.parser == "heuristic"
    assert [r.address for r in report.recipients] == ["gone.reader@patrons.example.org"]
    assert report.recipients[0].status == "5.1.1"
    # The copy of the message is quoted as text: its Callslip headers still name the notice.
    assert report.notice_id == 47
    assert report.original_message_id == "<callslip.0123456789abcdef.47.5f5f5f5f5f5f@library.example.edu>"
    assert report.verp_token == "47-5e5e5e5e"


def test_malformed_report_is_left_with_a_reason() -> None:
    report = parse_bounce(read("malformed.eml"))
    assert report.kind is BounceKind.MALFORMED
    assert report.reason == "a delivery report whose MIME parts cannot be read"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty message"),
        (b"   \r\n", "empty message"),
        (b"just some text without any header\n", "no headers: not an e-mail message"),
    ],
)
def test_not_a_message(data: bytes, reason: str) -> None:
    report = parse_bounce(data)
    assert report.kind is BounceKind.MALFORMED
    assert report.reason == reason


def test_a_plain_message_is_not_a_bounce() -> None:
    report = parse_bounce(b"From: a@b.example\r\nTo: ill@library.example.edu\r\nSubject: thanks!\r\n\r\nGot it.\r\n")
    assert report.kind is BounceKind.NOT_A_BOUNCE
    assert report.reason == "not a delivery report"


def test_a_failed_4xx_status_is_a_soft_bounce() -> None:
    data = read("postfix_rfc3464.eml").replace(b"Status: 5.1.1", b"Status: 4.2.2")
    report = parse_bounce(data)
    assert report.kind is BounceKind.SOFT


def test_hardness_without_a_status_comes_from_the_reply_code() -> None:
    assert FailedRecipient("a@b", "failed", "", "550 no such user").hard
    assert not FailedRecipient("a@b", "failed", "", "452 mailbox full").hard
    assert FailedRecipient("a@b", "failed", "", "").summary() == "no reason given"


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert parse_bounce(data).kind in BounceKind


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(p.name for p in BOUNCES.glob("*.eml"))), st.data())
def test_damaged_fixtures_never_raise(name: str, data: st.DataObject) -> None:
    raw = bytearray(read(name))
    for _ in range(data.draw(st.integers(0, 8))):
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        raw[at : at + data.draw(st.integers(0, 40))] = data.draw(st.binary(max_size=20))
    assert parse_bounce(bytes(raw)).kind in BounceKind
