"""Cron in a time zone: Berlin's DST nights, the cron(...) forms, and catch-up of missed runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kiln.pipelines.schedule import Schedule, ScheduleError

BERLIN = "Europe/Berlin"


def fires(schedule: Schedule, start: datetime, count: int) -> list[str]:
    out, t = [], start
    for _ in range(count):
        t = schedule.next_after(t)
        out.append(t.astimezone(schedule.tz).isoformat())
    return out


def test_weekdays_at_four_in_berlin_winter_and_summer() -> None:
    s = Schedule("cron(0 4 * * 1-5)", BERLIN)
    friday = datetime(2026, 12, 4, 12, tzinfo=UTC)
    assert fires(s, friday, 2) == [
        "2026-12-07T04:00:00+01:00",
        "2026-12-08T04:00:00+01:00",
    ]  # skips the weekend
    assert s.next_after(datetime(2026, 7, 1, 0, tzinfo=UTC)) == datetime(2026, 7, 1, 2, tzinfo=UTC)  # CEST


def test_spring_forward_a_skipped_time_runs_once_when_the_clock_jumps() -> None:
    # 2026-03-29: Berlin clocks go from 02:00 CET to 03:00 CEST; 02:30 does not exist that night.
    s = Schedule("30 2 * * *", BERLIN)
    assert fires(s, datetime(2026, 3, 28, 12, tzinfo=UTC), 3) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    every_20 = Schedule("*/20 * * * *", BERLIN)  # 02:00, 02:20, 02:40 all fall in the gap: one run at 03:00
    assert fires(every_20, datetime(2026, 3, 29, 0, 30, tzinfo=UTC), 3) == [
        "2026-03-29T01:40:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:20:00+02:00",
    ]


def test_fall_back_a_repeated_time_runs_once() -> None:
    # 2026-10-25: Berlin clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    s = Schedule("30 2 * * *", BERLIN)
    assert fires(s, datetime(2026, 10, 24, 12, tzinfo=UTC), 2) == [
        "2026-10-25T02:30:00+02:00",  # the first 02:30 only (croniter alone also fires at 02:30+01:00)
        "2026-10-26T02:30:00+01:00",
    ]
    # Asked from inside the repeated hour (after the first 02:30), the next is the next day's.
    second_hour = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 02:15 CET, the second time round
    assert s.next_after(second_hour).astimezone(s.tz).isoformat() == "2026-10-26T02:30:00+01:00"


def test_missed_fire_times_are_one_due_run() -> None:
    s = Schedule("0 4 * * *", BERLIN)
    down_since = datetime(2026, 11, 20, 12, tzinfo=UTC)
    now = datetime(2026, 12, 2, 8, tzinfo=UTC)  # eleven missed mornings
    assert s.due(down_since, now) == datetime(2026, 12, 2, 3, tzinfo=UTC)  # only the latest
    assert s.due(datetime(2026, 12, 2, 3, tzinfo=UTC), now) is None  # and it is due once
    assert s.last_at_or_before(datetime(2026, 12, 2, 3, tzinfo=UTC)) == datetime(2026, 12, 2, 3, tzinfo=UTC)


def test_the_six_field_form_is_eventbridges() -> None:
    # Day-of-week 2-6 is MON-FRI there (1 = SUN); '?' is "any".
    assert Schedule("cron(0 4 ? * 2-6 *)").expression == "0 4 * * 1-5"
    assert Schedule("cron(15 10 ? * 1 *)").expression == "15 10 * * 0"
    assert Schedule("cron(0 4 * * MON-FRI)").expression == "0 4 * * MON-FRI"


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("0 4 * *", "UTC", "expected 5 fields"),
        ("61 4 * * *", "UTC", "not a valid cron expression"),
        ("cron(0 4 ? * 2-6 2027)", "UTC", "year '2027': only"),
        ("cron(0 4 ? * 9 *)", "UTC", "outside 1-7"),
        ("cron(0 4 ? * 6L *)", "UTC", "'L' and '#' are not supported"),
        ("0 4 * * *", "Europe/Atlantis", "unknown time zone"),
    ],
)
def test_bad_schedules_are_named(expression: str, zone: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        Schedule(expression, zone)
