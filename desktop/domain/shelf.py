"""The hold shelf's date rules: when a hold ends, when each pickup reminder is due, when a reminder is too late.

Pure date arithmetic (no database, no Qt), so the rules are tested exhaustively with hypothesis. The rules:

* A hold of N days counted from the day the patron was notified ends on day ``notified + N``; if that day is
  closed it moves to the next open day (a patron never finds the desk shut on the last day).
* A reminder step is "N days after notification" or "N days before the hold ends". Its day moves to the next
  day that is open *and* one of the policy's sending weekdays. A reminder whose day would fall after the hold's
  end is not sent (it would arrive after the item went back).
* A reminder goes out from ``send_hour`` (local time) on its day until the end of that day: a System Manager
  that was down longer skips it (listed, never sent late in a burst).
* The hold expires at the start of the day after its end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum

#: How far ahead the next open day is looked for; a calendar closed for longer is refused when saved.
MAX_CLOSED_RUN = 366
MAX_STEPS = 10
MAX_STEP_DAYS = 365
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ALL_WEEKDAYS: frozenset[int] = frozenset(range(7))


class ShelfError(ValueError):
    """A shelf policy or closed-days calendar that cannot be used; the message names what is wrong."""


class StepKind(StrEnum):
    """How a reminder step's day is counted."""

    AFTER_NOTIFIED = "after_notified"
    BEFORE_END = "before_end"


@dataclass(frozen=True)
class ReminderStep:
    """One reminder: ``days`` after notification or before the hold ends, sent with ``template``.

    ``template`` is a template *name*; Loan and Article requests share a step, so the empty name means the
    default for the request's type ("Loan Pickup Reminder" / "Article Pickup Reminder").
    """

    kind: StepKind
    days: int
    template: str = ""

    def describe(self) -> str:
        """``3 days after notification`` / ``2 days before the hold ends``."""
        unit = "day" if self.days == 1 else "days"
        if self.kind is StepKind.AFTER_NOTIFIED:
            return f"{self.days} {unit} after notification"
        return f"{self.days} {unit} before the hold ends"


@dataclass(frozen=True)
class ShelfPolicy:
    """What a pickup location does with items on its shelf (hold days are the location's own column)."""

    steps: tuple[ReminderStep, ...] = (ReminderStep(StepKind.BEFORE_END, 2),)
    send_hour: int = 9
    weekdays: frozenset[int] = ALL_WEEKDAYS  # 0 = Monday, as date.weekday()
    expired_notice: bool = True

    def check(self) -> None:
        """Raise :class:`ShelfError` naming the first thing wrong."""
        if not 0 <= self.send_hour <= 23:
            raise ShelfError(f"the send hour must be from 0 to 23, not {self.send_hour}")
        if not self.weekdays or not self.weekdays <= ALL_WEEKDAYS:
            raise ShelfError("reminders need at least one day of the week to go out on")
        if len(self.steps) > MAX_STEPS:
            raise ShelfError(f"at most {MAX_STEPS} reminder steps, not {len(self.steps)}")
        for number, step in enumerate(self.steps, 1):
            if not 0 <= step.days <= MAX_STEP_DAYS:
                raise ShelfError(f"reminder {number}: the days must be from 0 to {MAX_STEP_DAYS}, not {step.days}")
            if step.kind is StepKind.AFTER_NOTIFIED and step.days == 0:
                raise ShelfError(f"reminder {number}: 0 days after notification is the arrival notice itself")
        seen: set[tuple[StepKind, int]] = set()
        for number, step in enumerate(self.steps, 1):
            if (step.kind, step.days) in seen:
                raise ShelfError(f"reminder {number} repeats an earlier one ({step.describe()})")
            seen.add((step.kind, step.days))


_MONTH_DAY = re.compile(r"^(\d{1,2})-(\d{1,2})$")


@dataclass(frozen=True)
class ClosedDays:
    """Days the desk is closed: single dates and yearly dates (month, day), e.g. 25 December every year."""

    dates: frozenset[date] = frozenset()
    yearly: frozenset[tuple[int, int]] = field(default_factory=frozenset)

    def is_closed(self, day: date) -> bool:
        """Whether ``day`` is closed."""
        return day in self.dates or (day.month, day.day) in self.yearly

    def check(self) -> None:
        """Raise :class:`ShelfError` for a yearly date that is not a day of the year, or a year all closed."""
        for month, day in self.yearly:
            _month_day(month, day)
        if len(self.yearly) >= 366:
            raise ShelfError("the calendar closes every day of the year")


def _month_day(month: int, day: int) -> tuple[int, int]:
    try:
        date(2000, month, day)  # a leap year, so 29 February is accepted
    except ValueError:
        raise ShelfError(f"{month:02d}-{day:02d} is not a day of the year (write MM-DD, e.g. 12-25)") from None
    return month, day


def parse_yearly(text: str) -> tuple[int, int]:
    """``"12-25"`` → ``(12, 25)``; a clear :class:`ShelfError` for anything else."""
    found = _MONTH_DAY.match(text.strip())
    if not found:
        raise ShelfError(f"a yearly closed day is written MM-DD (e.g. 12-25), not {text.strip()[:40]!r}")
    return _month_day(int(found.group(1)), int(found.group(2)))


def parse_date(text: str) -> date:
    """``"2026-12-24"`` → a date; a clear :class:`ShelfError` for anything else."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ShelfError(f"a closed date is written YYYY-MM-DD (e.g. 2026-12-24), not {text.strip()[:40]!r}") from None


def next_open_day(day: date, closed: ClosedDays, weekdays: Iterable[int] = ALL_WEEKDAYS) -> date:
    """``day`` itself if open (and on one of ``weekdays``), else the next such day.

    Raises:
        ShelfError: no such day within :data:`MAX_CLOSED_RUN` days (a calendar that closes the desk for a year).
    """
    allowed = frozenset(weekdays)
    for offset in range(MAX_CLOSED_RUN + 7):
        candidate = day + timedelta(days=offset)
        if candidate.weekday() in allowed and not closed.is_closed(candidate):
            return candidate
    raise ShelfError(f"no open day within a year after {day.isoformat()}: the closed-days calendar closes too much")


def hold_end(notified_on: date, hold_days: int, closed: ClosedDays) -> date:
    """The last day the item is held: ``hold_days`` after notification, moved to the next open day."""
    return next_open_day(notified_on + timedelta(days=hold_days), closed)


def reminder_day(
    step: ReminderStep, notified_on: date, end: date, policy: ShelfPolicy, closed: ClosedDays
) -> date | None:
    """The day ``step``'s reminder goes out, or ``None`` when it would not fall between notification and end.

    A step "N days before the end" moved forward by closed days may land after the end: it is then not sent.
    A step on or before the notification day (a short hold with an early "before the end" step) is not sent
    either: the arrival notice said it all the same day.
    """
    if step.kind is StepKind.AFTER_NOTIFIED:
        wanted = notified_on + timedelta(days=step.days)
    else:
        wanted = end - timedelta(days=step.days)
    if wanted <= notified_on:
        return None
    day = next_open_day(wanted, closed, policy.weekdays)
    return day if day <= end else None


def local_moment(day: date, hour: int, tz: tzinfo) -> datetime:
    """``day`` at ``hour``:00 in the library's time zone."""
    return datetime.combine(day, time(hour), tzinfo=tz)


def reminder_window(day: date, policy: ShelfPolicy, tz: tzinfo) -> tuple[datetime, datetime]:
    """When a reminder of ``day`` may go out: from the send hour to the end of that day (local time)."""
    return local_moment(day, policy.send_hour, tz), local_moment(day + timedelta(days=1), 0, tz)


def expires_at(end: date, tz: tzinfo) -> datetime:
    """The moment the hold is over: the start of the day after its last day."""
    return local_moment(end + timedelta(days=1), 0, tz)


@dataclass(frozen=True)
class PlannedReminder:
    """One step of one shelved request, as the plan sees it."""

    step: int  # index in the policy's steps
    day: date | None  # None: this step does not apply to this hold


def plan(
    notified_on: date, hold_days: int, policy: ShelfPolicy, closed: ClosedDays
) -> tuple[date, list[PlannedReminder]]:
    """The hold's end and each step's day, for the shelf view and the System Manager alike."""
    end = hold_end(notified_on, hold_days, closed)
    return end, [
        PlannedReminder(index, reminder_day(step, notified_on, end, policy, closed))
        for index, step in enumerate(policy.steps)
    ]
