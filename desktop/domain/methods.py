"""How a patron is told (notification method) and how the item reaches them (delivery method)."""

from __future__ import annotations

from enum import StrEnum


class NotificationMethod(StrEnum):
    """ILLiad's notification methods; SMS may join later without changing stored values."""

    EMAIL = "E-Mail"
    PHONE = "Phone"
    MAIL = "Mail"


class DeliveryMethod(StrEnum):
    """Whether the patron collects the item or it is posted to them."""

    HOLD_FOR_PICKUP = "Hold for Pickup"
    MAIL_TO_ADDRESS = "Mail to Address"


class RequestType(StrEnum):
    """Loan (a returnable item) or Article (a copy)."""

    LOAN = "Loan"
    ARTICLE = "Article"


_METHOD_ALIASES = {
    "e-mail": NotificationMethod.EMAIL,
    "email": NotificationMethod.EMAIL,
    "electronic": NotificationMethod.EMAIL,  # ILLiad's older name for e-mail
    "phone": NotificationMethod.PHONE,
    "telephone": NotificationMethod.PHONE,
    "mail": NotificationMethod.MAIL,
    "post": NotificationMethod.MAIL,
}

_DELIVERY_ALIASES = {
    "hold for pickup": DeliveryMethod.HOLD_FOR_PICKUP,
    "pickup": DeliveryMethod.HOLD_FOR_PICKUP,
    "mail to address": DeliveryMethod.MAIL_TO_ADDRESS,
}


def parse_notification_method(text: str) -> NotificationMethod:
    """Parse ILLiad's spellings (``E-Mail``, ``Electronic``, ``Phone``, ``Mail``)."""
    key = " ".join(text.split()).casefold()
    try:
        return _METHOD_ALIASES[key]
    except KeyError:
        raise ValueError(f"unknown notification method {text!r}; expected E-Mail, Phone or Mail") from None


def parse_delivery_method(text: str) -> DeliveryMethod:
    """Parse ``Hold for Pickup`` / ``Mail to Address``."""
    key = " ".join(text.split()).casefold()
    try:
        return _DELIVERY_ALIASES[key]
    except KeyError:
        raise ValueError(f"unknown delivery method {text!r}; expected 'Hold for Pickup' or 'Mail to Address'") from None


def parse_request_type(text: str) -> RequestType:
    """Parse ``Loan`` / ``Article`` (case-insensitive)."""
    key = text.strip().casefold()
    for value in RequestType:
        if value.value.casefold() == key:
            return value
    raise ValueError(f"unknown request type {text!r}; expected Loan or Article")


def request_title(request_type: str, loan_title: str, article_title: str, journal_title: str) -> str:
    """The title staff recognise: the loan title, or the article title (else the journal's) for copies."""
    if request_type == RequestType.ARTICLE.value:
        return article_title or journal_title
    return loan_title
