"""Channels and a patron's per-event preferences: which ways to tell a patron about what, in which order.

Why a domain rule: ILLiad 9 and Koha let a patron choose per kind of message (item ready, reminder, …) and per
transport; libraries ask for "text, else e-mail". The outbox (which channel to try next after a permanent
failure), the Contact Card (the editor) and the ILLiad importer (``NotificationMethod`` plus an SMS preference)
must agree on one meaning, so it lives here, free of Qt and SQL.

A preference is an ordered tuple of distinct channels. A patron with no stored preference for an event follows
their single notification method, as before this existed: E-Mail patrons are e-mailed, Phone patrons called,
Mail patrons written to — so adding preferences changes nobody's behaviour until staff change it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from desktop.domain.methods import NotificationMethod


class Channel(StrEnum):
    """A way to reach a patron. E-Mail and SMS go out automatically; Phone and Mail are desk work."""

    EMAIL = "E-Mail"
    SMS = "SMS"
    PHONE = "Phone"
    MAIL = "Mail"

    @property
    def automatic(self) -> bool:
        """True for channels the System Manager sends by itself (the others land in Contact Customers)."""
        return self in (Channel.EMAIL, Channel.SMS)


class NoticeEvent(StrEnum):
    """The events a patron can choose channels for (the Contact Card's rows)."""

    READY_FOR_PICKUP = "Item ready for pickup"
    PICKUP_REMINDER = "Pickup reminder"
    PASSWORD_RESET = "Password reset"
    CANCELLATION = "Cancellation"


Preference = tuple[Channel, ...]

_CHANNEL_ALIASES = {
    "e-mail": Channel.EMAIL,
    "email": Channel.EMAIL,
    "electronic": Channel.EMAIL,
    "sms": Channel.SMS,
    "text": Channel.SMS,
    "text message": Channel.SMS,
    "phone": Channel.PHONE,
    "telephone": Channel.PHONE,
    "mail": Channel.MAIL,
    "post": Channel.MAIL,
}


def parse_channel(text: str) -> Channel:
    """Parse a channel name as staff, CSV files and ILLiad spell it (case and spacing ignored)."""
    key = " ".join(text.split()).casefold()
    try:
        return _CHANNEL_ALIASES[key]
    except KeyError:
        raise ValueError(f"unknown channel {text!r}; expected E-Mail, SMS, Phone or Mail") from None


def default_preference(method: NotificationMethod | str, event: NoticeEvent) -> Preference:
    """What a patron without a stored preference gets: their single notification method.

    A password reset is always e-mailed (it carries a link); the desk cannot phone a link.
    """
    if event is NoticeEvent.PASSWORD_RESET:
        return (Channel.EMAIL,)
    return (parse_channel(str(method)),)


def check_preference(channels: Preference, event: NoticeEvent) -> list[str]:
    """Why ``channels`` cannot be saved for ``event``, as sentences for the editor (empty when it can)."""
    problems = []
    if not channels:
        problems.append(f"{event.value}: choose at least one channel.")
    if len(set(channels)) != len(channels):
        problems.append(f"{event.value}: each channel may appear only once.")
    if event is NoticeEvent.PASSWORD_RESET and Channel.EMAIL not in channels:
        problems.append(f"{event.value}: the reset link can only be e-mailed, so E-Mail must be one of the channels.")
    return problems


def format_preference(channels: Preference) -> str:
    """The stored and exported form: channel names joined by ``>`` (read as "else"), e.g. ``SMS>E-Mail>Phone``."""
    return ">".join(channel.value for channel in channels)


def parse_preference(text: str) -> Preference:
    """Read :func:`format_preference`'s form; ``,`` and ``;`` are accepted as separators too (CSV users)."""
    parts = [part for part in text.replace(",", ">").replace(";", ">").split(">") if part.strip()]
    channels = tuple(parse_channel(part) for part in parts)
    if len(set(channels)) != len(channels):
        raise ValueError(f"{text!r} names a channel twice")
    return channels


def illiad_preference(notification_method: str, sms_opt_in: bool) -> Preference:
    """ILLiad's ``NotificationMethod`` plus its SMS preference as a Callslip preference for item notices.

    ILLiad sends the SMS in addition to the e-mail when a user opted in; Callslip's nearest equivalent that keeps
    the patron reached is "SMS, else the old method".
    """
    method = parse_channel(notification_method) if notification_method.strip() else Channel.EMAIL
    if sms_opt_in and method is not Channel.SMS:
        return (Channel.SMS, method)
    return (method,)


def next_channel(channels: Preference, failed: Channel) -> Channel | None:
    """The channel to try after ``failed`` failed for good, or None when the list is used up.

    When ``failed`` is not in the list (staff edited the preference while the notice waited), the first channel
    of the list that is not ``failed`` is next, so the notice is never stranded.
    """
    if failed in channels:
        rest = channels[channels.index(failed) + 1 :]
        return rest[0] if rest else None
    return next((channel for channel in channels if channel is not failed), None)


#: Location names (the Locations code table) that mean "this phone takes text messages", compared without case.
MOBILE_LOCATIONS = frozenset({"cell", "mobile", "cell phone", "mobile phone", "sms"})


def sms_number(phones: Iterable[tuple[str, str, bool]]) -> str | None:
    """The number a patron's texts go to, from their phones as ``(E.164 number, location name, is primary)``.

    Why this rule: ILLiad keeps the mobile number apart (``MobilePhone``), which Callslip files as a phone at the
    Cell location; the main ``Phone`` is often a landline that cannot take a text. So a phone at a mobile location
    wins (the primary one first, then in the given order); without one, the primary phone is tried (the provider
    says so when it is a landline, and the notice falls back). ``None`` when the patron has no usable number.
    """
    listed = [(number.strip(), location.strip().casefold(), primary) for number, location, primary in phones]
    listed = [entry for entry in listed if entry[0]]
    mobile = [entry for entry in listed if entry[1] in MOBILE_LOCATIONS]
    for candidates in (mobile, listed):
        if candidates:
            primary = [entry for entry in candidates if entry[2]]
            if candidates is listed and not primary:
                return candidates[0][0]
            return (primary or candidates)[0][0]
    return None
