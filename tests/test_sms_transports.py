"""SMS transports against a local server implementing Twilio's documented Messages API, and gateway addresses."""

from __future__ import annotations

import httpx
import pytest

from desktop.services.notices.sms_transports import (
    DEFAULT_SMS_GATEWAYS,
    SmsConfigurationError,
    SmsPermanentError,
    SmsTemporaryError,
    TwilioSettings,
    TwilioTransport,
    check_twilio_settings,
    format_gateway_table,
    gateway_address,
    parse_gateway_table,
)
from tests.sms_provider_server import ACCOUNT_SID, AUTH_TOKEN, GARBLED, HANG_UP, SLOW, twilio_server

SENDER = "+15005550006"
SERVICE = "MG" + "fedcba9876543210" * 2


def _transport(base: str, *, token: str = AUTH_TOKEN, sender: str = SENDER, timeout: float = 5.0) -> TwilioTransport:
    return TwilioTransport(TwilioSettings(ACCOUNT_SID, sender, api_base=base, timeout_seconds=timeout), token)


def test_a_text_is_accepted_with_the_providers_message_id() -> None:
    with twilio_server() as (base, log):
        transport = _transport(base)
        try:
            accepted = transport.send("+15551234567", "Your book is ready — Zoë, pick it up by Friday.")
        finally:
            transport.close()
    assert accepted.provider_message_id == f"SM{1:032x}"
    assert accepted.status == "queued"
    assert log.accepted == [
        {"To": "+15551234567", "Body": "Your book is ready — Zoë, pick it up by Friday.", "From": SENDER}
    ]


def test_a_messaging_service_is_sent_as_messaging_service_sid() -> None:
    with twilio_server() as (base, log):
        transport = _transport(base, sender=SERVICE)
        try:
            transport.send("+15551234567", "Ready")
        finally:
            transport.close()
    assert log.accepted[0]["MessagingServiceSid"] == SERVICE
    assert "From" not in log.accepted[0]


@pytest.mark.parametrize(
    ("number", "kind", "code"),
    [
        ("+15005550001", SmsPermanentError, 21211),  # invalid number
        ("+15005550009", SmsPermanentError, 21614),  # a landline
        ("+15005550004", SmsPermanentError, 21610),  # unsubscribed (STOP)
        ("+15005550002", SmsTemporaryError, 20429),  # rate limited
        ("+15005550003", SmsTemporaryError, 20500),  # provider outage
    ],
)
def test_documented_errors_are_classified(number: str, kind: type[Exception], code: int) -> None:
    with twilio_server() as (base, _log):
        transport = _transport(base)
        try:
            with pytest.raises(kind) as caught:
                transport.send(number, "Ready")
        finally:
            transport.close()
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert str(code) in str(caught.value)


def test_a_wrong_auth_token_is_the_librarys_configuration_not_the_patrons() -> None:
    with twilio_server() as (base, log):
        transport = _transport(base, token="wrong")
        try:
            with pytest.raises(SmsConfigurationError, match="401 Authenticate"):
                transport.send("+15551234567", "Ready")
        finally:
            transport.close()
    assert log.accepted == []


def test_a_timeout_is_temporary() -> None:
    with twilio_server(slow_seconds=2.0) as (base, _log):
        transport = _transport(base, timeout=0.3)
        try:
            with pytest.raises(SmsTemporaryError, match="did not answer in time"):
                transport.send(SLOW, "Ready")
        finally:
            transport.close()


def test_a_server_that_closes_the_connection_is_temporary() -> None:
    with twilio_server() as (base, _log):
        transport = _transport(base)
        try:
            with pytest.raises(SmsTemporaryError, match="could not be reached"):
                transport.send(HANG_UP, "Ready")
        finally:
            transport.close()


def test_an_unreachable_provider_is_temporary() -> None:
    with twilio_server() as (base, _log):
        pass  # the server is gone: its port refuses connections
    transport = _transport(base)
    try:
        with pytest.raises(SmsTemporaryError, match="could not be reached"):
            transport.send("+15551234567", "Ready")
    finally:
        transport.close()


def test_an_accepted_text_with_an_unreadable_answer_is_not_an_error() -> None:
    # 2xx means the provider took it: raising would make the outbox send it again.
    with twilio_server() as (base, _log):
        transport = _transport(base)
        try:
            accepted = transport.send(GARBLED, "Ready")
        finally:
            transport.close()
    assert accepted.provider_message_id == ""
    assert "unreadable" in accepted.status


def test_the_request_is_what_twilio_documents() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sid": "SM1", "status": "queued"})

    client = httpx.Client(transport=httpx.MockTransport(record), auth=(ACCOUNT_SID, AUTH_TOKEN))
    transport = TwilioTransport(TwilioSettings(ACCOUNT_SID, SENDER), AUTH_TOKEN, client=client)
    transport.send("+15551234567", "Ready & waiting")
    transport.close()
    request = seen[0]
    assert request.method == "POST"
    assert str(request.url) == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.content == b"To=%2B15551234567&Body=Ready+%26+waiting&From=%2B15005550006"


def test_settings_are_checked_before_the_first_text() -> None:
    assert check_twilio_settings(TwilioSettings(ACCOUNT_SID, SENDER)) == []
    assert check_twilio_settings(TwilioSettings(ACCOUNT_SID, SERVICE)) == []
    problems = check_twilio_settings(TwilioSettings("AC123", "555-1234", api_base="http://example.org"))
    assert len(problems) == 3
    assert "Account SID" in problems[0]
    assert "international form" in problems[1]
    assert "https://" in problems[2]


def test_gateway_address_uses_the_national_digits_and_the_carriers_domain() -> None:
    assert gateway_address("(201) 555-0123", "verizon", DEFAULT_SMS_GATEWAYS) == "2015550123@vtext.com"
    assert gateway_address("+1 201 555 0123", "T-Mobile", DEFAULT_SMS_GATEWAYS) == "2015550123@tmomail.net"
    with pytest.raises(SmsPermanentError, match="No e-mail-to-SMS gateway is known for the carrier 'Nokia Net'"):
        gateway_address("+1 201 555 0123", "Nokia Net", DEFAULT_SMS_GATEWAYS)
    with pytest.raises(SmsPermanentError, match="not a valid phone number"):
        gateway_address("12", "Verizon", DEFAULT_SMS_GATEWAYS)
    with pytest.raises(SmsPermanentError, match="not a phone number"):
        gateway_address("call me", "Verizon", DEFAULT_SMS_GATEWAYS)


def test_the_carrier_table_round_trips_and_keeps_good_lines_of_a_bad_edit() -> None:
    text = format_gateway_table(DEFAULT_SMS_GATEWAYS)
    assert parse_gateway_table(text) == (DEFAULT_SMS_GATEWAYS, [])
    table, problems = parse_gateway_table(
        "# our carriers\nVerizon = VTEXT.com\nnonsense line\nBell = not a domain\nverizon = other.example\n"
    )
    assert table == {"Verizon": "vtext.com"}
    assert problems == [
        "Line 3: write it as 'Carrier name = gateway.domain'.",
        "Line 4: 'not a domain' is not a domain name.",
        "Line 5: 'verizon' is listed twice; the first line is used.",
    ]
