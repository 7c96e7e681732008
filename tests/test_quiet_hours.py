"""Quiet hours for text messages (desktop/domain/quiet_hours.py)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop.domain.quiet_hours import QuietHours, QuietHoursError, parse_time

NIGHT = QuietHours(time(21, 0), time(8, 0))


@pytest.mark.parametrize(
    ("moment", "quiet", "opens"),
    [
        (datetime(2026, 12, 1, 20, 59), False, datetime(2026, 12, 1, 20, 59)),
        (datetime(2026, 12, 1, 21, 0), True, datetime(2026, 12, 2, 8, 0)),
        (datetime(2026, 12, 1, 23, 40), True, datetime(2026, 12, 2, 8, 0)),
        (datetime(2026, 12, 2, 3, 15), True, datetime(2026, 12, 2, 8, 0)),
        (datetime(2026, 12, 2, 8, 0), False, datetime(2026, 12, 2, 8, 0)),
    ],
)
def test_a_window_across_midnight(moment: datetime, quiet: bool, opens: datetime) -> None:
    assert NIGHT.is_quiet(moment) is quiet
    assert NIGHT.next_open(moment) == opens


def test_a_window_inside_one_day_and_none() -> None:
    lunch = QuietHours(time(12, 0), time(13, 0))
    assert lunch.is_quiet(datetime(2026, 12, 1, 12, 30))
    assert lunch.next_open(datetime(2026, 12, 1, 12, 30)) == datetime(2026, 12, 1, 13, 0)
    assert not lunch.is_quiet(datetime(2026, 12, 1, 13, 0))
    off = QuietHours(time(8, 0), time(8, 0))
    assert not off.enabled and not off.is_quiet(datetime(2026, 12, 1, 3, 0))
    assert off.describe() == "no quiet hours"
    assert NIGHT.describe() == "quiet hours 21:00–08:00"


def test_times_staff_type() -> None:
    assert parse_time(" 9:30 ") == time(9, 30)
    for bad in ("25:00", "nine", "9", "21:60"):
        with pytest.raises(QuietHoursError, match="is not a time of day"):
            parse_time(bad)


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    st.times(),
    st.times(),
)
def test_next_open_is_never_quiet_and_never_more_than_a_day_away(moment: datetime, start: time, end: time) -> None:
    hours = QuietHours(start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0))
    opening = hours.next_open(moment)
    assert moment <= opening <= moment + timedelta(days=1)
    assert not hours.is_quiet(opening)
