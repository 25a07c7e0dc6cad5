"""Which calendar day(s) a run loads: pure date arithmetic, no Airflow, no I/O."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from smsc_hook.client.exceptions import SmscConfigError

#: Scheduled runs re-fetch this many earlier days to pick up late changes.
DEFAULT_LOOKBACK_DAYS = 3
MAX_LOOKBACK_DAYS = 31


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, or a config error naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SmscConfigError(
            f"unknown time zone {name!r} (expected e.g. 'Europe/Moscow')"
        ) from None


def parse_run_at(value: str | time) -> time:
    """``"03:00"`` → ``time(3, 0)``; the local time a day's run starts on the next day."""
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    try:
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise SmscConfigError(f"run time must be HH:MM (24 h), got {value!r}") from None


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar day, in ``tz``, that contains ``moment`` (which must be aware)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: a time zone is required")
    return moment.astimezone(tz).date()


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight that starts ``day`` in ``tz`` (aware)."""
    return datetime.combine(day, time(), tzinfo=tz)


def run_after(day: date, tz: ZoneInfo, run_at: time) -> datetime:
    """When the scheduled run for ``day`` may start: ``run_at`` local time on the next day."""
    return datetime.combine(day + timedelta(days=1), run_at, tzinfo=tz)


def latest_complete_day(now: datetime, tz: ZoneInfo, run_at: time) -> date:
    """The newest day whose scheduled run time has already passed at ``now``."""
    local_now = now.astimezone(tz)
    day = local_now.date() - timedelta(days=1)
    if local_now.time().replace(tzinfo=None) < run_at:
        day -= timedelta(days=1)
    return day


def check_lookback(days: int) -> int:
    if not 0 <= days <= MAX_LOOKBACK_DAYS:
        raise SmscConfigError(
            f"SMSC_LOOKBACK_DAYS must be between 0 and {MAX_LOOKBACK_DAYS}, got {days}"
        )
    return days


def days_to_load(day: date, *, scheduled: bool, lookback_days: int) -> list[date]:
    """The run's own day, plus ``lookback_days`` earlier ones for scheduled runs only.

    Backfills and manual runs load exactly their day: a backfill of A..B must make
    one call per day, not four.
    """
    check_lookback(lookback_days)
    extra = lookback_days if scheduled else 0
    return [day - timedelta(days=back) for back in range(extra, -1, -1)]
