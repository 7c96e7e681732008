"""The hold shelf's date rules (desktop/domain/shelf.py), with hypothesis over calendars and policies."""

from __future__ import annotations

from datetime import UTC, date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop.domain.shelf import (
    ClosedDays,
    ReminderStep,
    ShelfError,
    ShelfPolicy,
    StepKind,
    expires_at,
    hold_end,
    next_open_day,
    parse_date,
    parse_yearly,
    plan,
    reminder_day,
    reminder_window,
)

days = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))
calendars = st.builds(
    ClosedDays,
    dates=st.frozensets(st.dates(min_value=date(2020, 1, 1), max_value=date(2036, 6, 30)), max_size=60),
    yearly=st.frozensets(st.tuples(st.integers(1, 12), st.integers(1, 28)), max_size=20),
)
steps = st.builds(ReminderStep, kind=st.sampled_from(StepKind), days=st.integers(1, 30))
policies = st.builds(
    ShelfPolicy,
    steps=st.lists(steps, max_size=4, unique_by=lambda s: (s.kind, s.days)).map(tuple),
    send_hour=st.integers(0, 23),
    weekdays=st.frozensets(st.integers(0, 6), min_size=1),
)


@given(days, st.integers(1, 60), calendars)
def test_hold_end_is_open_and_never_early(notified: date, hold_days: int, closed: ClosedDays) -> None:
    end = hold_end(notified, hold_days, closed)
    assert not closed.is_closed(end)
    assert end >= notified + timedelta(days=hold_days)
    # every day skipped is closed: it moved to the *next* open day, not further
    skipped = notified + timedelta(days=hold_days)
    while skipped < end:
        assert closed.is_closed(skipped)
        skipped += timedelta(days=1)


@given(days, st.integers(1, 60), policies, calendars)
def test_reminders_fall_on_open_sending_days_within_the_hold(
    notified: date, hold_days: int, policy: ShelfPolicy, closed: ClosedDays
) -> None:
    end, planned = plan(notified, hold_days, policy, closed)
    for item in planned:
        if item.day is None:
            continue
        assert notified < item.day <= end
        assert not closed.is_closed(item.day)
        assert item.day.weekday() in policy.weekdays


def test_default_policy_reminds_two_days_before_the_end() -> None:
    end, planned = plan(date(2026, 12, 1), 10, ShelfPolicy(), ClosedDays())
    assert end == date(2026, 12, 11)
    assert [p.day for p in planned] == [date(2026, 12, 9)]


def test_closed_days_move_the_end_and_the_reminder() -> None:
    closed = ClosedDays(dates=frozenset({date(2026, 12, 11)}), yearly=frozenset({(12, 9)}))
    end, planned = plan(date(2026, 12, 1), 10, ShelfPolicy(), closed)
    assert end == date(2026, 12, 12)
    # 2 days before the 12th is the 10th (open)
    assert [p.day for p in planned] == [date(2026, 12, 10)]
    # a reminder landing on a closed day moves to the next open one
    policy = ShelfPolicy(steps=(ReminderStep(StepKind.AFTER_NOTIFIED, 8),))
    assert plan(date(2026, 12, 1), 10, policy, closed)[1][0].day == date(2026, 12, 10)


def test_a_reminder_pushed_past_the_end_is_not_sent() -> None:
    closed = ClosedDays(dates=frozenset({date(2026, 12, 10), date(2026, 12, 11)}))
    step = ReminderStep(StepKind.BEFORE_END, 1)
    policy = ShelfPolicy(steps=(step,), weekdays=frozenset({0}))  # Mondays only: 2026-12-14
    end = hold_end(date(2026, 12, 1), 9, closed)  # the 10th and 11th closed: the 12th
    assert end == date(2026, 12, 12)
    assert reminder_day(step, date(2026, 12, 1), end, policy, closed) is None


def test_windows_and_expiry_in_the_library_zone() -> None:
    start, stop = reminder_window(date(2026, 12, 9), ShelfPolicy(send_hour=9), UTC)
    assert (start.hour, stop - start) == (9, timedelta(hours=15))
    assert expires_at(date(2026, 12, 11), UTC).date() == date(2026, 12, 12)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (ShelfPolicy(send_hour=24), "send hour must be from 0 to 23"),
        (ShelfPolicy(weekdays=frozenset()), "at least one day of the week"),
        (ShelfPolicy(steps=(ReminderStep(StepKind.AFTER_NOTIFIED, 0),)), "is the arrival notice itself"),
        (ShelfPolicy(steps=(ReminderStep(StepKind.BEFORE_END, -1),)), "days must be from 0 to 365"),
        (ShelfPolicy(steps=(ReminderStep(StepKind.BEFORE_END, 2),) * 2), "repeats an earlier one"),
    ],
)
def test_bad_policies_are_named(policy: ShelfPolicy, message: str) -> None:
    with pytest.raises(ShelfError, match=message):
        policy.check()


@pytest.mark.parametrize(
    ("text", "message"),
    [("12/25", "written MM-DD"), ("02-30", "not a day of the year"), ("13-01", "not a day of the year")],
)
def test_bad_yearly_dates_are_named(text: str, message: str) -> None:
    with pytest.raises(ShelfError, match=message):
        parse_yearly(text)


def test_dates_parse_and_bad_dates_are_named() -> None:
    assert parse_yearly(" 2-29 ") == (2, 29)
    assert parse_date("2026-12-24") == date(2026, 12, 24)
    with pytest.raises(ShelfError, match="written YYYY-MM-DD"):
        parse_date("24.12.2026")


def test_a_calendar_closed_for_over_a_year_is_refused() -> None:
    start = date(2026, 1, 1)
    closed = ClosedDays(dates=frozenset(start + timedelta(days=n) for n in range(400)))
    with pytest.raises(ShelfError, match="no open day within a year"):
        next_open_day(start, closed)
