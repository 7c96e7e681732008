"""Borrowing statuses (ILLiad's queue names) and the transitions staff and the System Manager may make.

The strings are ILLiad's exactly, because staff read them on screen and exchange them in CSV files.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A borrowing request's status; each status is also a queue on the Borrowing tab."""

    AWAITING_REQUEST_PROCESSING = "Awaiting Request Processing"
    REQUEST_SENT = "Request Sent"
    IN_TRANSIT_TO_PICKUP = "In Transit to Pickup Location"
    AWAITING_CUSTOMER_CONTACT = "Awaiting Customer Contact"
    NOTIFIED_VIA_EMAIL = "Customer Notified via E-Mail"
    NOTIFIED_VIA_PHONE = "Customer Notified via Phone"
    NOTIFIED_VIA_MAIL = "Customer Notified via Mail"
    CHECKED_OUT = "Checked Out to Customer"
    #: The hold ended without checkout: the item waits to be sent back (issue 17, the hold shelf).
    AWAITING_RETURN_TO_LENDER = "Awaiting Return to Lender"
    REQUEST_FINISHED = "Request Finished"
    CANCELLED_BY_STAFF = "Cancelled by ILL Staff"
    CANCELLED_BY_CUSTOMER = "Cancelled by Customer"


#: Queue order on the Borrowing tab: the pickup path, then the side exits.
QUEUE_ORDER: tuple[Status, ...] = tuple(Status)

NOTIFIED_STATUSES: frozenset[Status] = frozenset(
    {Status.NOTIFIED_VIA_EMAIL, Status.NOTIFIED_VIA_PHONE, Status.NOTIFIED_VIA_MAIL}
)
CANCELLED_STATUSES: frozenset[Status] = frozenset({Status.CANCELLED_BY_STAFF, Status.CANCELLED_BY_CUSTOMER})
_CANCEL = CANCELLED_STATUSES

_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.AWAITING_REQUEST_PROCESSING: frozenset({Status.REQUEST_SENT} | _CANCEL),
    # "Mail to Address" patrons skip In Transit to Pickup Location, so Request Sent may go straight on.
    Status.REQUEST_SENT: frozenset(
        {Status.IN_TRANSIT_TO_PICKUP, Status.AWAITING_CUSTOMER_CONTACT, Status.AWAITING_REQUEST_PROCESSING} | _CANCEL
    ),
    Status.IN_TRANSIT_TO_PICKUP: frozenset({Status.AWAITING_CUSTOMER_CONTACT} | _CANCEL),
    Status.AWAITING_CUSTOMER_CONTACT: frozenset(NOTIFIED_STATUSES | {Status.CHECKED_OUT} | _CANCEL),
    # A notified request may be sent back to be notified again (wrong address, patron asked).
    # The System Manager moves a notified request whose hold ended to Awaiting Return to Lender.
    Status.NOTIFIED_VIA_EMAIL: frozenset(
        {Status.CHECKED_OUT, Status.AWAITING_CUSTOMER_CONTACT, Status.AWAITING_RETURN_TO_LENDER} | _CANCEL
    ),
    Status.NOTIFIED_VIA_PHONE: frozenset(
        {Status.CHECKED_OUT, Status.AWAITING_CUSTOMER_CONTACT, Status.AWAITING_RETURN_TO_LENDER} | _CANCEL
    ),
    Status.NOTIFIED_VIA_MAIL: frozenset(
        {Status.CHECKED_OUT, Status.AWAITING_CUSTOMER_CONTACT, Status.AWAITING_RETURN_TO_LENDER} | _CANCEL
    ),
    Status.CHECKED_OUT: frozenset({Status.REQUEST_FINISHED}),
    # Staff may put an expired item back on the shelf (a new hold period starts), check it out to a patron who
    # came late, or finish the request once it went back to the lender.
    Status.AWAITING_RETURN_TO_LENDER: frozenset(
        NOTIFIED_STATUSES | {Status.CHECKED_OUT, Status.REQUEST_FINISHED} | _CANCEL
    ),
    Status.REQUEST_FINISHED: frozenset(),
    # Staff may reopen a cancelled request.
    Status.CANCELLED_BY_STAFF: frozenset({Status.AWAITING_REQUEST_PROCESSING}),
    Status.CANCELLED_BY_CUSTOMER: frozenset({Status.AWAITING_REQUEST_PROCESSING}),
}


class TransitionError(ValueError):
    """A status change that the borrowing workflow does not allow."""


def parse_status(text: str) -> Status:
    """Return the status named by ``text`` (exact ILLiad name, case and surrounding blanks ignored).

    Raises:
        ValueError: with the list of valid names, for a CSV row or a command line.
    """
    wanted = " ".join(text.split()).casefold()
    for status in Status:
        if status.value.casefold() == wanted:
            return status
    raise ValueError(f"unknown status {text!r}; expected one of: " + ", ".join(s.value for s in Status))


def allowed_transitions(current: Status) -> frozenset[Status]:
    """Statuses a request at ``current`` may move to."""
    return _TRANSITIONS[current]


def check_transition(current: Status, target: Status) -> None:
    """Raise :class:`TransitionError` unless ``current`` → ``target`` is allowed."""
    if target not in _TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in _TRANSITIONS[current])) or "none"
        raise TransitionError(f"a request at {current.value!r} cannot move to {target.value!r} (allowed: {allowed})")
