from __future__ import annotations

import itertools

import pytest

from desktop.domain.statuses import (
    QUEUE_ORDER,
    Status,
    TransitionError,
    allowed_transitions,
    check_transition,
    parse_status,
)


def test_pickup_path_is_allowed_in_order() -> None:
    path = [
        Status.AWAITING_REQUEST_PROCESSING,
        Status.REQUEST_SENT,
        Status.IN_TRANSIT_TO_PICKUP,
        Status.AWAITING_CUSTOMER_CONTACT,
        Status.NOTIFIED_VIA_PHONE,
        Status.CHECKED_OUT,
        Status.REQUEST_FINISHED,
    ]
    for current, target in itertools.pairwise(path):
        check_transition(current, target)


def test_mail_to_address_skips_in_transit() -> None:
    check_transition(Status.REQUEST_SENT, Status.AWAITING_CUSTOMER_CONTACT)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.REQUEST_FINISHED, Status.AWAITING_CUSTOMER_CONTACT),
        (Status.AWAITING_REQUEST_PROCESSING, Status.NOTIFIED_VIA_EMAIL),
        (Status.CHECKED_OUT, Status.CANCELLED_BY_STAFF),
    ],
)
def test_disallowed_transition_names_both_statuses(current: Status, target: Status) -> None:
    with pytest.raises(TransitionError, match=current.value) as info:
        check_transition(current, target)
    assert target.value in str(info.value)


def test_every_status_is_a_queue_and_has_rules() -> None:
    assert set(QUEUE_ORDER) == set(Status)
    for status in Status:
        assert status not in allowed_transitions(status)


def test_parse_status_tolerates_case_and_spacing() -> None:
    assert parse_status("  awaiting   customer contact ") is Status.AWAITING_CUSTOMER_CONTACT
    with pytest.raises(ValueError, match="expected one of"):
        parse_status("Awaiting Pickup")
