"""windows: which calendar day(s) a run loads, in the account's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from smsc_hook.airflow.windows import (
    MAX_LOOKBACK_DAYS,
    day_start,
    days_to_load,
    latest_complete_day,
    local_day,
    parse_run_at,
    run_after,
    zone,
)
from smsc_hook.client.exceptions import SmscConfigError

MOSCOW = ZoneInfo("Europe/Moscow")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
THREE_AM = time(3, 0)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


# --- zone / parse_run_at -------------------------------------------------------------


@pytest.mark.parametrize("name", ["Europe/Moscow", "UTC", "America/New_York", "Asia/Tokyo"])
def test_zone_resolves_iana_names(name: str) -> None:
    assert zone(name) == ZoneInfo(name)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Mars/Olympus_Mons", id="unknown-name"),
        pytest.param("", id="empty"),
        pytest.param("../etc/passwd", id="path-traversal"),
        pytest.param("MSK+3", id="abbreviation"),
    ],
)
def test_zone_rejects_unknown_names_with_config_error(name: str) -> None:
    with pytest.raises(SmscConfigError, match="unknown time zone"):
        zone(name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("03:00", time(3, 0), id="default"),
        pytest.param("3:05", time(3, 5), id="one-digit-hour"),
        pytest.param(" 23:59 ", time(23, 59), id="surrounding-space"),
        pytest.param("00:00", time(0, 0), id="midnight"),
        pytest.param(time(4, 30), time(4, 30), id="time-object"),
        pytest.param(time(4, 30, tzinfo=UTC), time(4, 30), id="aware-time-made-naive"),
    ],
)
def test_parse_run_at_accepts_hh_mm(value: str | time, expected: time) -> None:
    parsed = parse_run_at(value)
    assert parsed == expected
    assert parsed.tzinfo is None


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("24:00", id="hour-24"),
        pytest.param("12:60", id="minute-60"),
        pytest.param("-1:00", id="negative"),
        pytest.param("3", id="no-colon"),
        pytest.param("03:00:00", id="with-seconds"),
        pytest.param("three:00", id="words"),
        pytest.param("", id="empty"),
    ],
)
def test_parse_run_at_rejects_non_hh_mm(value: str) -> None:
    with pytest.raises(SmscConfigError, match="HH:MM"):
        parse_run_at(value)


# --- local_day / day_start / run_after -----------------------------------------------


@pytest.mark.parametrize(
    ("moment", "tz", "expected"),
    [
        pytest.param(utc(2026, 3, 14, 20, 59), MOSCOW, date(2026, 3, 14), id="moscow-23:59"),
        pytest.param(utc(2026, 3, 14, 21, 0), MOSCOW, date(2026, 3, 15), id="moscow-midnight"),
        pytest.param(utc(2026, 3, 15, 0, 0), MOSCOW, date(2026, 3, 15), id="utc-midnight-moscow"),
        pytest.param(utc(2026, 3, 15, 0, 0), ZoneInfo("UTC"), date(2026, 3, 15), id="utc"),
        pytest.param(utc(2026, 3, 15, 3, 0), NEW_YORK, date(2026, 3, 14), id="new-york-23:00"),
        pytest.param(utc(2026, 3, 14, 15, 0), TOKYO, date(2026, 3, 15), id="tokyo-midnight"),
        pytest.param(
            datetime(2026, 3, 15, 0, 0, tzinfo=MOSCOW),
            TOKYO,
            date(2026, 3, 15),
            id="moscow-in-tokyo",
        ),
    ],
)
def test_local_day_is_the_calendar_day_in_the_zone(
    moment: datetime, tz: ZoneInfo, expected: date
) -> None:
    assert local_day(moment, tz) == expected


def test_local_day_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_day(datetime(2026, 3, 15, 12, 0), MOSCOW)


@pytest.mark.parametrize(
    ("day", "tz", "start_utc", "length_hours"),
    [
        pytest.param(date(2026, 3, 15), MOSCOW, utc(2026, 3, 14, 21), 24, id="moscow"),
        pytest.param(date(2026, 3, 15), ZoneInfo("UTC"), utc(2026, 3, 15), 24, id="utc"),
        pytest.param(date(2026, 3, 15), TOKYO, utc(2026, 3, 14, 15), 24, id="tokyo"),
        pytest.param(date(2026, 3, 7), NEW_YORK, utc(2026, 3, 7, 5), 24, id="new-york-before-dst"),
        pytest.param(date(2026, 3, 8), NEW_YORK, utc(2026, 3, 8, 5), 23, id="new-york-spring"),
        pytest.param(date(2026, 3, 9), NEW_YORK, utc(2026, 3, 9, 4), 24, id="new-york-after-dst"),
        pytest.param(date(2026, 11, 1), NEW_YORK, utc(2026, 11, 1, 4), 25, id="new-york-autumn"),
    ],
)
def test_day_start_is_local_midnight_and_days_follow_dst(
    day: date, tz: ZoneInfo, start_utc: datetime, length_hours: int
) -> None:
    start = day_start(day, tz)
    end = day_start(day + timedelta(days=1), tz)
    assert start == start_utc
    assert start.astimezone(tz).time() == time(0, 0)
    assert hours(end.astimezone(UTC) - start.astimezone(UTC)) == length_hours
    assert local_day(start, tz) == day
    assert local_day(end - timedelta(microseconds=1), tz) == day


@pytest.mark.parametrize(
    ("day", "tz", "expected_utc"),
    [
        pytest.param(date(2026, 3, 15), MOSCOW, utc(2026, 3, 16, 0), id="moscow"),
        pytest.param(date(2026, 3, 15), TOKYO, utc(2026, 3, 15, 18), id="tokyo"),
        pytest.param(date(2026, 3, 7), NEW_YORK, utc(2026, 3, 8, 7), id="new-york-onto-dst-day"),
        pytest.param(date(2026, 3, 8), NEW_YORK, utc(2026, 3, 9, 7), id="new-york-dst-day"),
        pytest.param(
            date(2026, 10, 31), NEW_YORK, utc(2026, 11, 1, 8), id="new-york-onto-fallback"
        ),
        pytest.param(date(2026, 12, 31), ZoneInfo("UTC"), utc(2027, 1, 1, 3), id="utc-new-year"),
    ],
)
def test_run_after_is_run_at_local_time_on_the_next_day(
    day: date, tz: ZoneInfo, expected_utc: datetime
) -> None:
    moment = run_after(day, tz, THREE_AM)
    assert moment == expected_utc
    assert moment.astimezone(tz).date() == day + timedelta(days=1)
    assert moment.astimezone(tz).time() == THREE_AM


@pytest.mark.parametrize(
    ("now", "tz", "expected"),
    [
        pytest.param(utc(2026, 11, 10, 0, 0), MOSCOW, date(2026, 11, 9), id="moscow-at-03:00"),
        pytest.param(utc(2026, 11, 9, 23, 59), MOSCOW, date(2026, 11, 8), id="moscow-02:59"),
        pytest.param(utc(2026, 11, 9, 21, 0), MOSCOW, date(2026, 11, 8), id="moscow-midnight"),
        pytest.param(utc(2026, 11, 10, 20, 59), MOSCOW, date(2026, 11, 9), id="moscow-23:59"),
        pytest.param(utc(2026, 11, 10, 2, 0), ZoneInfo("UTC"), date(2026, 11, 8), id="utc-02:00"),
        pytest.param(utc(2026, 11, 10, 3, 0), ZoneInfo("UTC"), date(2026, 11, 9), id="utc-03:00"),
        pytest.param(utc(2026, 3, 8, 7, 0), NEW_YORK, date(2026, 3, 7), id="new-york-dst-03:00"),
        pytest.param(utc(2026, 3, 8, 6, 59), NEW_YORK, date(2026, 3, 6), id="new-york-dst-01:59"),
        pytest.param(utc(2026, 11, 9, 18, 0), TOKYO, date(2026, 11, 9), id="tokyo-03:00"),
    ],
)
def test_latest_complete_day_is_the_newest_day_whose_run_time_passed(
    now: datetime, tz: ZoneInfo, expected: date
) -> None:
    assert latest_complete_day(now, tz, THREE_AM) == expected
    assert (
        run_after(expected, tz, THREE_AM) <= now < run_after(expected + timedelta(1), tz, THREE_AM)
    )


# --- days_to_load --------------------------------------------------------------------

D = date(2026, 11, 9)


@pytest.mark.parametrize(
    ("day", "scheduled", "lookback", "expected"),
    [
        pytest.param(D, True, 0, [D], id="scheduled-no-lookback"),
        pytest.param(
            D,
            True,
            3,
            [date(2026, 11, 6), date(2026, 11, 7), date(2026, 11, 8), D],
            id="scheduled-lookback-3-oldest-first",
        ),
        pytest.param(D, False, 0, [D], id="manual-or-backfill-no-lookback"),
        pytest.param(D, False, 3, [D], id="manual-or-backfill-ignores-lookback"),
        pytest.param(
            date(2026, 1, 1),
            True,
            3,
            [date(2025, 12, 29), date(2025, 12, 30), date(2025, 12, 31), date(2026, 1, 1)],
            id="scheduled-across-new-year",
        ),
        pytest.param(
            date(2028, 3, 1),
            True,
            1,
            [date(2028, 2, 29), date(2028, 3, 1)],
            id="scheduled-across-leap-day",
        ),
        pytest.param(
            D, True, MAX_LOOKBACK_DAYS, [D - timedelta(days=n) for n in range(31, -1, -1)], id="max"
        ),
    ],
)
def test_days_to_load(day: date, scheduled: bool, lookback: int, expected: list[date]) -> None:
    assert days_to_load(day, scheduled=scheduled, lookback_days=lookback) == expected


@pytest.mark.parametrize("lookback", [-1, MAX_LOOKBACK_DAYS + 1])
@pytest.mark.parametrize("scheduled", [True, False], ids=["scheduled", "manual"])
def test_days_to_load_rejects_out_of_range_lookback(lookback: int, scheduled: bool) -> None:
    with pytest.raises(SmscConfigError, match="SMSC_LOOKBACK_DAYS"):
        days_to_load(D, scheduled=scheduled, lookback_days=lookback)
