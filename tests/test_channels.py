"""Channels and per-event preferences (desktop/domain/channels.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop.domain.channels import (
    Channel,
    NoticeEvent,
    check_preference,
    default_preference,
    format_preference,
    illiad_preference,
    next_channel,
    parse_channel,
    parse_preference,
)
from desktop.domain.methods import NotificationMethod


@pytest.mark.parametrize("method", list(NotificationMethod))
def test_a_patron_without_preferences_keeps_their_method_for_item_notices(method: NotificationMethod) -> None:
    for event in (NoticeEvent.READY_FOR_PICKUP, NoticeEvent.PICKUP_REMINDER, NoticeEvent.CANCELLATION):
        assert default_preference(method, event) == (Channel(method.value),)
    assert default_preference(method, NoticeEvent.PASSWORD_RESET) == (Channel.EMAIL,)


def test_only_email_and_sms_are_automatic() -> None:
    assert [c for c in Channel if c.automatic] == [Channel.EMAIL, Channel.SMS]


@pytest.mark.parametrize(
    ("text", "channel"),
    [
        ("email", Channel.EMAIL),
        (" E-MAIL ", Channel.EMAIL),
        ("Electronic", Channel.EMAIL),
        ("Text  message", Channel.SMS),
        ("sms", Channel.SMS),
        ("Telephone", Channel.PHONE),
        ("post", Channel.MAIL),
    ],
)
def test_channel_spellings(text: str, channel: Channel) -> None:
    assert parse_channel(text) is channel


def test_an_unknown_channel_is_named() -> None:
    with pytest.raises(ValueError, match="unknown channel 'pigeon'; expected E-Mail, SMS, Phone or Mail"):
        parse_channel("pigeon")


preferences = st.lists(st.sampled_from(list(Channel)), unique=True, min_size=1).map(tuple)


@given(preferences)
def test_a_preference_round_trips(channels: tuple[Channel, ...]) -> None:
    assert parse_preference(format_preference(channels)) == channels


def test_separators_staff_type_are_accepted_and_repeats_refused() -> None:
    assert parse_preference("SMS, e-mail; phone") == (Channel.SMS, Channel.EMAIL, Channel.PHONE)
    with pytest.raises(ValueError, match="names a channel twice"):
        parse_preference("SMS>E-Mail>sms")


def test_check_preference_explains() -> None:
    assert check_preference((Channel.SMS, Channel.EMAIL), NoticeEvent.READY_FOR_PICKUP) == []
    assert check_preference((), NoticeEvent.PICKUP_REMINDER) == ["Pickup reminder: choose at least one channel."]
    assert check_preference((Channel.SMS,), NoticeEvent.PASSWORD_RESET) == [
        "Password reset: the reset link can only be e-mailed, so E-Mail must be one of the channels."
    ]
    assert "only once" in check_preference((Channel.SMS, Channel.SMS), NoticeEvent.CANCELLATION)[0]


def test_fallback_walks_the_list_in_order() -> None:
    chain = (Channel.EMAIL, Channel.SMS, Channel.PHONE)
    assert next_channel(chain, Channel.EMAIL) is Channel.SMS
    assert next_channel(chain, Channel.SMS) is Channel.PHONE
    assert next_channel(chain, Channel.PHONE) is None
    # The preference changed while the notice waited: the notice still has somewhere to go.
    assert next_channel((Channel.PHONE, Channel.MAIL), Channel.EMAIL) is Channel.PHONE
    assert next_channel((Channel.EMAIL,), Channel.EMAIL) is None


@given(preferences, st.sampled_from(list(Channel)))
def test_fallback_never_repeats_the_failed_channel_and_ends(channels: tuple[Channel, ...], failed: Channel) -> None:
    seen = {failed}
    current: Channel | None = failed
    while (current := next_channel(channels, current)) is not None:
        assert current not in seen
        seen.add(current)
    assert len(seen) <= len(channels) + 1


def test_illiad_notification_method_and_sms_opt_in() -> None:
    assert illiad_preference("E-Mail", sms_opt_in=False) == (Channel.EMAIL,)
    assert illiad_preference("Electronic", sms_opt_in=True) == (Channel.SMS, Channel.EMAIL)
    assert illiad_preference("Phone", sms_opt_in=True) == (Channel.SMS, Channel.PHONE)
    assert illiad_preference("", sms_opt_in=False) == (Channel.EMAIL,)


def test_sms_number_prefers_a_mobile_location_then_the_primary_phone() -> None:
    from desktop.domain.channels import sms_number

    home, cell = ("+15551230000", "Home", True), ("+15559870000", "Cell", False)
    assert sms_number([home, cell]) == "+15559870000"
    assert sms_number([home]) == "+15551230000"
    assert sms_number([("+15551110000", "Work", False), ("+15552220000", "Home", False)]) == "+15551110000"
    assert sms_number([("+15553330000", "Mobile", False), ("+15554440000", "cell", True)]) == "+15554440000"
    assert sms_number([("", "Cell", True)]) is None
    assert sms_number([]) is None
