"""SmscDailyTimetable: one run per calendar day in the account's zone, started next morning."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from airflow.exceptions import AirflowTimetableInvalid
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from pendulum import DateTime, instance

from smsc_hook.airflow.timetable import SmscDailyTimetable
from smsc_hook.airflow.windows import days_to_load, local_day
from smsc_hook.client.exceptions import SmscConfigError

PLUGINS_FOLDER = Path(__file__).resolve().parent.parent / "plugins"

ZONES = ["Europe/Moscow", "UTC", "America/New_York", "Asia/Tokyo"]


def at(tz: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> DateTime:
    """An aware pendulum time, as Airflow hands them to timetables."""
    return instance(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> DateTime:
    return at("UTC", year, month, day, hour, minute)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def hours(interval: DataInterval) -> float:
    return (interval.end.timestamp() - interval.start.timestamp()) / 3600


def pin_now(monkeypatch: pytest.MonkeyPatch, timetable: SmscDailyTimetable, now: DateTime) -> None:
    monkeypatch.setattr(timetable, "_now", lambda: now)


def iter_dagrun_infos_between(
    timetable: SmscDailyTimetable, earliest: DateTime, latest: DateTime
) -> list[DagRunInfo]:
    """What Airflow's ``SerializedDAG.iter_dagrun_infos_between`` does for a backfill."""
    restriction = TimeRestriction(earliest, latest, catchup=True)
    infos: list[DagRunInfo] = []
    info: DagRunInfo | None = None
    while True:
        info = timetable.next_dagrun_info_v2(last_dagrun_info=info, restriction=restriction)
        if info is None:
            return infos
        infos.append(info)
        assert len(infos) <= 400, "timetable never stopped"


def assert_one_run_per_local_day(
    timetable: SmscDailyTimetable, infos: list[DagRunInfo], expected: list[date]
) -> None:
    tz = ZoneInfo(timetable.timezone_name)
    intervals = [info.data_interval for info in infos]
    assert None not in intervals
    assert [local_day(i.start, tz) for i in intervals if i] == expected
    for info, day in zip(infos, expected, strict=True):
        assert info.data_interval == timetable.interval_for(day)
        assert info.logical_date == datetime.combine(day, time(), tzinfo=tz)
        next_morning = datetime.combine(day + timedelta(days=1), timetable.run_at, tzinfo=tz)
        assert info.run_after == next_morning
    for before, after in itertools.pairwise(intervals):
        assert before is not None
        assert after is not None
        assert before.end == after.start, "gap or overlap between consecutive days"


# --- construction, validation, serialization ---------------------------------------


def test_defaults_are_moscow_at_three() -> None:
    timetable = SmscDailyTimetable()
    assert timetable.timezone_name == "Europe/Moscow"
    assert timetable.run_at == time(3, 0)
    assert timetable.summary == "daily 03:00 Europe/Moscow"
    assert "Europe/Moscow" in timetable.description
    assert timetable.periodic
    assert timetable.can_be_scheduled


def test_unknown_zone_is_refused_at_construction() -> None:
    with pytest.raises(SmscConfigError, match="Mars/Olympus"):
        SmscDailyTimetable("Mars/Olympus")


@pytest.mark.parametrize("run_at", ["25:00", "3", "noon"])
def test_bad_run_at_is_refused_at_construction(run_at: str) -> None:
    with pytest.raises(SmscConfigError, match="HH:MM"):
        SmscDailyTimetable("UTC", run_at)


@pytest.mark.parametrize("tz", ZONES)
def test_validate_accepts_a_known_zone(tz: str) -> None:
    SmscDailyTimetable(tz).validate()


def test_validate_raises_airflow_timetable_invalid_for_an_unknown_zone() -> None:
    # The constructor already refuses unknown zones; validate re-checks the stored name,
    # which is what Airflow calls when it checks a parsed DAG.
    timetable = SmscDailyTimetable("UTC")
    timetable.timezone_name = "Mars/Olympus"
    with pytest.raises(AirflowTimetableInvalid, match="Mars/Olympus"):
        timetable.validate()


@pytest.mark.parametrize(
    ("tz", "run_at", "serialized"),
    [
        pytest.param(
            "Europe/Moscow", "03:00", {"timezone": "Europe/Moscow", "run_at": "03:00"}, id="default"
        ),
        pytest.param(
            "Asia/Tokyo", "4:15", {"timezone": "Asia/Tokyo", "run_at": "04:15"}, id="padded"
        ),
        pytest.param("UTC", time(23, 5), {"timezone": "UTC", "run_at": "23:05"}, id="time"),
    ],
)
def test_serialize_round_trip(tz: str, run_at: str | time, serialized: dict[str, str]) -> None:
    timetable = SmscDailyTimetable(tz, run_at)
    assert timetable.serialize() == serialized
    restored = SmscDailyTimetable.deserialize(timetable.serialize())
    assert restored == timetable
    assert hash(restored) == hash(timetable)
    assert restored.run_at == timetable.run_at
    assert restored.interval_for(date(2026, 3, 8)) == timetable.interval_for(date(2026, 3, 8))


def test_equality_depends_on_zone_and_run_at() -> None:
    assert SmscDailyTimetable("UTC", "03:00") == SmscDailyTimetable("UTC", "3:00")
    assert SmscDailyTimetable("UTC", "03:00") != SmscDailyTimetable("UTC", "04:00")
    assert SmscDailyTimetable("UTC", "03:00") != SmscDailyTimetable("Asia/Tokyo", "03:00")
    assert SmscDailyTimetable() != "Europe/Moscow"


# --- data intervals ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "start_utc", "length_hours"),
    [
        pytest.param("Europe/Moscow", date(2026, 3, 15), utc(2026, 3, 14, 21), 24, id="moscow"),
        pytest.param("UTC", date(2026, 3, 15), utc(2026, 3, 15), 24, id="utc"),
        pytest.param("Asia/Tokyo", date(2026, 3, 15), utc(2026, 3, 14, 15), 24, id="tokyo"),
        pytest.param("America/New_York", date(2026, 3, 8), utc(2026, 3, 8, 5), 23, id="ny-spring"),
        pytest.param("America/New_York", date(2026, 11, 1), utc(2026, 11, 1, 4), 25, id="ny-fall"),
        pytest.param("America/New_York", date(2026, 11, 2), utc(2026, 11, 2, 5), 24, id="ny-after"),
    ],
)
def test_interval_is_one_local_calendar_day(
    tz: str, day: date, start_utc: DateTime, length_hours: int
) -> None:
    interval = SmscDailyTimetable(tz).interval_for(day)
    assert interval.start == start_utc
    assert hours(interval) == length_hours
    assert interval.start.in_timezone(tz).time() == time(0, 0)
    assert interval.end.in_timezone(tz).time() == time(0, 0)
    assert interval.end.in_timezone(tz).date() == day + timedelta(days=1)


@pytest.mark.parametrize(
    ("tz", "run_after", "expected_day"),
    [
        pytest.param("Europe/Moscow", utc(2026, 3, 15, 20, 59), date(2026, 3, 15), id="msk-23:59"),
        pytest.param("Europe/Moscow", utc(2026, 3, 15, 21, 0), date(2026, 3, 16), id="msk-00:00"),
        pytest.param("Europe/Moscow", utc(2026, 3, 15, 0, 0), date(2026, 3, 15), id="msk-utc-0h"),
        pytest.param("UTC", utc(2026, 3, 15, 23, 59), date(2026, 3, 15), id="utc-23:59"),
        pytest.param("America/New_York", utc(2026, 3, 8, 4), date(2026, 3, 7), id="ny-utc-0h"),
        pytest.param("America/New_York", utc(2026, 3, 8, 7), date(2026, 3, 8), id="ny-dst-3am"),
        pytest.param("America/New_York", utc(2026, 11, 1, 6), date(2026, 11, 1), id="ny-fold"),
        pytest.param("Asia/Tokyo", utc(2026, 3, 14, 15), date(2026, 3, 15), id="tokyo-00:00"),
        pytest.param(
            "Asia/Tokyo", at("Asia/Tokyo", 2026, 3, 15, 23, 59), date(2026, 3, 15), id="tokyo-local"
        ),
    ],
)
def test_manual_run_loads_the_local_day_containing_its_date(
    tz: str, run_after: DateTime, expected_day: date
) -> None:
    timetable = SmscDailyTimetable(tz)
    interval = timetable.infer_manual_data_interval(run_after=run_after)
    assert interval == timetable.interval_for(expected_day)
    assert interval.start <= run_after < interval.end


# --- scheduled runs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "start_date", "expected_day"),
    [
        pytest.param("Europe/Moscow", at("Europe/Moscow", 2026, 1, 1), date(2026, 1, 1), id="msk"),
        pytest.param("Europe/Moscow", utc(2025, 12, 31, 21), date(2026, 1, 1), id="msk-as-utc"),
        pytest.param("UTC", utc(2026, 1, 1), date(2026, 1, 1), id="utc"),
        pytest.param(
            "America/New_York", at("America/New_York", 2026, 3, 8), date(2026, 3, 8), id="ny-dst"
        ),
        pytest.param("Asia/Tokyo", at("Asia/Tokyo", 2026, 1, 1), date(2026, 1, 1), id="tokyo"),
        pytest.param(
            "Europe/Moscow", at("Europe/Moscow", 2026, 1, 1, 12), date(2026, 1, 1), id="msk-noon"
        ),
    ],
)
def test_first_scheduled_run_is_the_day_of_the_start_date(
    tz: str, start_date: DateTime, expected_day: date
) -> None:
    timetable = SmscDailyTimetable(tz)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(start_date, None, catchup=True),
    )
    assert info is not None
    assert_one_run_per_local_day(timetable, [info], [expected_day])


@pytest.mark.parametrize("tz", ZONES)
def test_next_scheduled_run_is_the_following_day(tz: str) -> None:
    timetable = SmscDailyTimetable(tz)
    for day in [date(2026, 3, 7), date(2026, 3, 8), date(2026, 10, 31), date(2026, 12, 31)]:
        info = timetable.next_dagrun_info(
            last_automated_data_interval=timetable.interval_for(day),
            restriction=TimeRestriction(at(tz, 2026, 1, 1), None, catchup=True),
        )
        assert info is not None
        assert_one_run_per_local_day(timetable, [info], [day + timedelta(days=1)])


def test_run_after_honours_a_custom_run_time() -> None:
    timetable = SmscDailyTimetable("Asia/Tokyo", "04:15")
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(at("Asia/Tokyo", 2026, 5, 1), None, catchup=True),
    )
    assert info is not None
    assert info.run_after == at("Asia/Tokyo", 2026, 5, 2, 4, 15)


def test_no_start_date_and_catchup_means_no_run() -> None:
    timetable = SmscDailyTimetable()
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=TimeRestriction(None, None, catchup=True)
    )
    assert info is None


def test_end_date_stops_scheduling_after_its_local_day() -> None:
    timetable = SmscDailyTimetable()
    restriction = TimeRestriction(
        at("Europe/Moscow", 2026, 1, 1), at("Europe/Moscow", 2026, 1, 5, 12), catchup=True
    )
    last_day = timetable.next_dagrun_info(
        last_automated_data_interval=timetable.interval_for(date(2026, 1, 4)),
        restriction=restriction,
    )
    assert last_day is not None
    assert last_day.logical_date == at("Europe/Moscow", 2026, 1, 5)
    after_end = timetable.next_dagrun_info(
        last_automated_data_interval=timetable.interval_for(date(2026, 1, 5)),
        restriction=restriction,
    )
    assert after_end is None


# "Now" is 2026-11-10 10:00 in Moscow: 2026-11-09 is the newest day whose run (03:00) began.
NOW = at("Europe/Moscow", 2026, 11, 10, 10)


@pytest.mark.parametrize(
    ("now", "last_day", "start_day", "expected_day"),
    [
        pytest.param(NOW, None, date(2026, 1, 1), date(2026, 11, 9), id="first-run-jumps"),
        pytest.param(NOW, date(2026, 6, 1), date(2026, 1, 1), date(2026, 11, 9), id="gap-jumps"),
        pytest.param(NOW, date(2026, 11, 8), date(2026, 1, 1), date(2026, 11, 9), id="up-to-date"),
        pytest.param(NOW, date(2026, 11, 9), date(2026, 1, 1), date(2026, 11, 10), id="waits"),
        pytest.param(NOW, None, date(2026, 12, 1), date(2026, 12, 1), id="future-start"),
        pytest.param(
            at("Europe/Moscow", 2026, 11, 10, 2, 59),
            None,
            date(2026, 1, 1),
            date(2026, 11, 8),
            id="before-03:00-yesterday-not-complete",
        ),
        pytest.param(
            at("Europe/Moscow", 2026, 11, 10, 3, 0),
            None,
            date(2026, 1, 1),
            date(2026, 11, 9),
            id="at-03:00-yesterday-complete",
        ),
    ],
)
def test_without_catchup_the_schedule_starts_at_the_latest_complete_day(
    monkeypatch: pytest.MonkeyPatch,
    now: DateTime,
    last_day: date | None,
    start_day: date,
    expected_day: date,
) -> None:
    timetable = SmscDailyTimetable()
    pin_now(monkeypatch, timetable, now)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=timetable.interval_for(last_day) if last_day else None,
        restriction=TimeRestriction(
            at("Europe/Moscow", start_day.year, start_day.month, start_day.day),
            None,
            catchup=False,
        ),
    )
    assert info is not None
    assert_one_run_per_local_day(timetable, [info], [expected_day])


def test_without_catchup_a_jump_still_respects_the_end_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timetable = SmscDailyTimetable()
    pin_now(monkeypatch, timetable, NOW)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(
            at("Europe/Moscow", 2026, 1, 1), at("Europe/Moscow", 2026, 6, 30), catchup=False
        ),
    )
    assert info is None


def test_now_is_aware_utc() -> None:
    now = SmscDailyTimetable()._now()
    assert now.utcoffset() == timedelta(0)
    assert abs(now.timestamp() - datetime.now(UTC).timestamp()) < 5


# --- backfills ---------------------------------------------------------------------

A, B = date(2026, 3, 1), date(2026, 3, 10)


@pytest.mark.parametrize(
    ("tz", "earliest", "latest", "expected"),
    [
        pytest.param(
            "Europe/Moscow",
            at("Europe/Moscow", 2026, 3, 1),
            at("Europe/Moscow", 2026, 3, 10),
            days(A, B),
            id="moscow-local-midnights",
        ),
        pytest.param(
            "Europe/Moscow",
            utc(2026, 3, 1),
            utc(2026, 3, 10),
            days(A, B),
            id="moscow-utc-midnights-from-cli",
        ),
        pytest.param(
            "Europe/Moscow",
            at("Europe/Moscow", 2026, 3, 5),
            at("Europe/Moscow", 2026, 3, 5),
            [date(2026, 3, 5)],
            id="moscow-single-day",
        ),
        pytest.param(
            "Europe/Moscow",
            utc(2025, 12, 30),
            utc(2026, 1, 2),
            days(date(2025, 12, 30), date(2026, 1, 2)),
            id="moscow-across-new-year",
        ),
        pytest.param("UTC", utc(2026, 3, 1), utc(2026, 3, 10), days(A, B), id="utc"),
        pytest.param(
            "Asia/Tokyo", utc(2026, 3, 1), utc(2026, 3, 10), days(A, B), id="tokyo-utc-midnights"
        ),
        pytest.param(
            "Asia/Tokyo",
            at("Asia/Tokyo", 2026, 3, 1),
            at("Asia/Tokyo", 2026, 3, 10),
            days(A, B),
            id="tokyo-local-midnights",
        ),
        pytest.param(
            "America/New_York",
            at("America/New_York", 2026, 3, 6),
            at("America/New_York", 2026, 3, 10),
            days(date(2026, 3, 6), date(2026, 3, 10)),
            id="new-york-across-spring-dst",
        ),
        pytest.param(
            "America/New_York",
            at("America/New_York", 2026, 10, 30),
            at("America/New_York", 2026, 11, 3),
            days(date(2026, 10, 30), date(2026, 11, 3)),
            id="new-york-across-fall-dst",
        ),
    ],
)
def test_backfill_makes_exactly_one_run_per_day_from_a_to_b(
    tz: str, earliest: DateTime, latest: DateTime, expected: list[date]
) -> None:
    timetable = SmscDailyTimetable(tz)
    infos = iter_dagrun_infos_between(timetable, earliest, latest)
    assert_one_run_per_local_day(timetable, infos, expected)


def test_backfill_intervals_across_dst_are_23_and_25_hours() -> None:
    timetable = SmscDailyTimetable("America/New_York")
    spring = iter_dagrun_infos_between(
        timetable, at("America/New_York", 2026, 3, 7), at("America/New_York", 2026, 3, 9)
    )
    fall = iter_dagrun_infos_between(
        timetable, at("America/New_York", 2026, 10, 31), at("America/New_York", 2026, 11, 2)
    )
    assert [hours(i.data_interval) for i in spring if i.data_interval] == [24, 23, 24]
    assert [hours(i.data_interval) for i in fall if i.data_interval] == [24, 25, 24]


def test_backfill_ignores_catchup_false_on_the_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    # Backfills always pass catchup=True; "now" must not shift their days.
    timetable = SmscDailyTimetable()
    pin_now(monkeypatch, timetable, NOW)
    infos = iter_dagrun_infos_between(timetable, utc(2026, 3, 1), utc(2026, 3, 3))
    assert_one_run_per_local_day(timetable, infos, days(A, date(2026, 3, 3)))


# --- which days each kind of run loads ---------------------------------------------

DAY = date(2026, 3, 8)


def scheduled_interval(timetable: SmscDailyTimetable, day: date) -> DataInterval | None:
    info = timetable.next_dagrun_info(
        last_automated_data_interval=timetable.interval_for(day - timedelta(days=1)),
        restriction=TimeRestriction(at(timetable.timezone_name, 2026, 1, 1), None, catchup=True),
    )
    return info.data_interval if info else None


def manual_interval(timetable: SmscDailyTimetable, day: date) -> DataInterval | None:
    # `airflow dags test DAG 2026-03-08` with default_timezone UTC: UTC midnight of the day.
    return timetable.infer_manual_data_interval(run_after=utc(day.year, day.month, day.day))


def backfill_interval(timetable: SmscDailyTimetable, day: date) -> DataInterval | None:
    bound = utc(day.year, day.month, day.day)
    (info,) = iter_dagrun_infos_between(timetable, bound, bound)
    return info.data_interval


@pytest.mark.parametrize(
    ("tz", "run_kind", "lookback", "expected"),
    [
        pytest.param("Europe/Moscow", "scheduled", 0, [DAY], id="msk-scheduled-lookback-0"),
        pytest.param(
            "Europe/Moscow", "scheduled", 3, days(date(2026, 3, 5), DAY), id="msk-scheduled-3"
        ),
        pytest.param("Europe/Moscow", "manual", 3, [DAY], id="msk-manual-no-lookback"),
        pytest.param("Europe/Moscow", "backfill", 3, [DAY], id="msk-backfill-no-lookback"),
        pytest.param("UTC", "scheduled", 3, days(date(2026, 3, 5), DAY), id="utc-scheduled-3"),
        pytest.param("UTC", "manual", 0, [DAY], id="utc-manual"),
        pytest.param("UTC", "backfill", 3, [DAY], id="utc-backfill"),
        pytest.param("Asia/Tokyo", "scheduled", 0, [DAY], id="tokyo-scheduled-0"),
        pytest.param("Asia/Tokyo", "manual", 3, [DAY], id="tokyo-manual"),
        pytest.param("Asia/Tokyo", "backfill", 0, [DAY], id="tokyo-backfill"),
        pytest.param(
            "America/New_York",
            "scheduled",
            3,
            days(date(2026, 3, 5), DAY),
            id="ny-dst-day-scheduled-3",
        ),
        pytest.param("America/New_York", "scheduled", 0, [DAY], id="ny-dst-day-scheduled-0"),
    ],
)
def test_days_loaded_per_run_kind(
    tz: str, run_kind: str, lookback: int, expected: list[date]
) -> None:
    timetable = SmscDailyTimetable(tz)
    interval = {
        "scheduled": scheduled_interval,
        "manual": manual_interval,
        "backfill": backfill_interval,
    }[run_kind](timetable, DAY)
    assert interval is not None
    day = local_day(interval.start, ZoneInfo(tz))
    loaded = days_to_load(day, scheduled=run_kind == "scheduled", lookback_days=lookback)
    assert loaded == expected


# --- Airflow's own serializer (needs the plugin registration) ----------------------

#: Airflow's own plugin scan reads plugins/.airflowignore with a deprecated pathspec class.
quiet_plugin_scan = pytest.mark.filterwarnings("ignore:GitWildMatchPattern:DeprecationWarning")


@pytest.fixture
def plugins_folder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point Airflow's plugin loading at ``plugins/`` for one test, with clean caches."""
    from airflow import plugins_manager, settings

    def clear_caches() -> None:
        plugins_manager._get_plugins.cache_clear()
        plugins_manager.get_timetables_plugins.cache_clear()

    monkeypatch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(PLUGINS_FOLDER))
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    monkeypatch.setattr(settings, "PLUGINS_FOLDER", str(PLUGINS_FOLDER))
    clear_caches()
    yield PLUGINS_FOLDER
    clear_caches()


@quiet_plugin_scan
def test_plugin_registers_the_timetable(plugins_folder: Path) -> None:
    from airflow import plugins_manager

    registered = plugins_manager.get_timetables_plugins()
    assert registered.get("smsc_hook.airflow.timetable.SmscDailyTimetable") is SmscDailyTimetable


@quiet_plugin_scan
@pytest.mark.parametrize(
    "installed", [True, False], ids=["installed-and-plugins-folder", "plugins-folder-only"]
)
def test_the_plugin_is_registered_once(
    plugins_folder: Path, monkeypatch: pytest.MonkeyPatch, installed: bool
) -> None:
    """Entry point and plugins/ together register one ``smsc`` plugin, with no import error;
    plugins/ alone (package not installed) registers it too."""
    import sys

    from airflow import plugins_manager

    from smsc_hook.airflow import plugin as airflow_plugin

    if not installed:
        monkeypatch.setattr(airflow_plugin, "installed", lambda: False)
        monkeypatch.setattr(plugins_manager, "_load_entrypoint_plugins", lambda: ([], {}))
    else:
        assert airflow_plugin.installed(), "the test environment installs the package (-e .)"
    monkeypatch.delitem(sys.modules, "smsc_plugin", raising=False)
    plugins, import_errors = plugins_manager._get_plugins()
    assert [p.name for p in plugins if p.name == "smsc"] == ["smsc"]
    assert import_errors == {}
    registered = plugins_manager.get_timetables_plugins()
    assert registered.get("smsc_hook.airflow.timetable.SmscDailyTimetable") is SmscDailyTimetable


def test_unregistered_timetable_cannot_be_encoded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the plugin the scheduler could not load the DAG: the check below is real."""
    from airflow import plugins_manager, settings
    from airflow.serialization.encoders import encode_timetable
    from airflow.serialization.helpers import TimetableNotRegistered

    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    monkeypatch.setattr(settings, "PLUGINS_FOLDER", str(tmp_path))
    # The installed package's entry point would register it without any plugins folder.
    monkeypatch.setattr(plugins_manager, "_load_entrypoint_plugins", lambda: ([], {}))
    plugins_manager._get_plugins.cache_clear()
    plugins_manager.get_timetables_plugins.cache_clear()
    try:
        with pytest.raises(TimetableNotRegistered):
            encode_timetable(SmscDailyTimetable())
    finally:
        plugins_manager._get_plugins.cache_clear()
        plugins_manager.get_timetables_plugins.cache_clear()


@quiet_plugin_scan
@pytest.mark.parametrize(
    ("tz", "run_at"), [("Europe/Moscow", "03:00"), ("America/New_York", "04:30")]
)
def test_airflow_encodes_and_decodes_the_timetable(
    plugins_folder: Path, tz: str, run_at: str
) -> None:
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable

    timetable = SmscDailyTimetable(tz, run_at)
    encoded = encode_timetable(timetable)
    assert encoded["__type"] == "smsc_hook.airflow.timetable.SmscDailyTimetable"
    assert encoded["__var"] == {"timezone": tz, "run_at": run_at}
    decoded = decode_timetable(encoded)
    assert isinstance(decoded, SmscDailyTimetable)
    assert decoded == timetable


@quiet_plugin_scan
def test_a_timetable_serialized_by_0_1_still_decodes(plugins_folder: Path) -> None:
    """DAG versions written by 0.1 name the timetable by its old module path."""
    from airflow.serialization.decoders import decode_timetable

    old = {
        "__type": "smsc_hook.timetable.SmscDailyTimetable",
        "__var": {"timezone": "Asia/Almaty", "run_at": "04:30"},
    }
    decoded = decode_timetable(old)
    assert isinstance(decoded, SmscDailyTimetable)
    assert (decoded.timezone_name, decoded.run_at) == ("Asia/Almaty", time(4, 30))


@quiet_plugin_scan
def test_serialized_dag_backfills_days_a_to_b(plugins_folder: Path) -> None:
    """A whole DAG through Airflow's serializer, then Airflow's own backfill iteration."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    timetable = SmscDailyTimetable("Europe/Moscow", "03:00")
    with DAG(
        "smsc_timetable_probe",
        schedule=timetable,
        start_date=datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/Moscow")),
        catchup=False,
    ) as dag:
        EmptyOperator(task_id="noop")

    serialized = DagSerialization.to_dict(dag)
    restored = DagSerialization.from_dict(serialized)
    assert restored.timetable == timetable

    infos = list(restored.iter_dagrun_infos_between(utc(2026, 3, 1), utc(2026, 3, 10)))
    assert_one_run_per_local_day(timetable, infos, days(A, B))
