"""Quiet hours: the part of the day when no text message may go out (texts wait until the window opens).

Why a rule of its own: an SMS wakes a phone; a notice created at 23:40 by a late check-in must not buzz a
patron at night. E-mail has no such rule. The window is given in the library's local time and may cross
midnight (21:00–08:00, the usual case); a start equal to the end means "no quiet hours".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta


class QuietHoursError(ValueError):
    """A time staff typed that is not HH:MM."""


def parse_time(text: str) -> time:
    """``21:00`` or ``9:30`` → a time; :class:`QuietHoursError` naming the text otherwise."""
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise QuietHoursError(f"{text.strip()[:20]!r} is not a time of day (use HH:MM, e.g. 21:00)") from None


@dataclass(frozen=True)
class QuietHours:
    """No texts from ``start`` (inclusive) until ``end`` (exclusive), local time."""

    start: time = time(21, 0)
    end: time = time(8, 0)

    @property
    def enabled(self) -> bool:
        """False when start equals end (texts may go at any hour)."""
        return self.start != self.end

    def is_quiet(self, local: datetime) -> bool:
        """True when a text may not go out at ``local`` (a naive or aware local time)."""
        if not self.enabled:
            return False
        now = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end  # the window crosses midnight

    def next_open(self, local: datetime) -> datetime:
        """``local`` itself when texts may go, else the moment the quiet window ends (same zone as ``local``)."""
        if not self.is_quiet(local):
            return local
        opening = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if opening <= local:
            opening += timedelta(days=1)
        return opening

    def describe(self) -> str:
        """How the Settings page and the outbox's "waiting" reason say it."""
        if not self.enabled:
            return "no quiet hours"
        return f"quiet hours {self.start:%H:%M}–{self.end:%H:%M}"
