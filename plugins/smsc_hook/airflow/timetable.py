"""A data-interval timetable whose intervals are calendar days in the account's time zone.

A cron string gives zero-width intervals in Airflow 3, and ``CronDataIntervalTimetable``
cannot start a day's run at 03:00 the next morning while keeping the interval on the
calendar day. Here each run's data interval is ``[D 00:00, D+1 00:00)`` local time, its
logical date is ``D 00:00`` and it starts at ``run_at`` on ``D+1``. So ``airflow backfill
create --from-date A --to-date B`` makes one run per day A..B and ``airflow dags test
DAG D`` loads D. Registered with Airflow by ``smsc_hook.airflow.plugin``.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any

from airflow.exceptions import AirflowTimetableInvalid
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable
from pendulum import DateTime, instance

from smsc_hook.airflow.windows import day_start, latest_complete_day, local_day, parse_run_at, zone
from smsc_hook.airflow.windows import run_after as day_run_after
from smsc_hook.client.exceptions import SmscConfigError


class SmscDailyTimetable(Timetable):
    """One run per calendar day in ``timezone``, starting at ``run_at`` the next day."""

    periodic = True
    can_be_scheduled = True
    run_ordering = ("data_interval_end", "logical_date")

    def __init__(self, timezone: str = "Europe/Moscow", run_at: str | time = "03:00") -> None:
        self.timezone_name = timezone
        self.run_at = parse_run_at(run_at)
        self._tz = zone(timezone)
        self.description = (
            f"Each calendar day in {timezone}, loaded at {self.run_at:%H:%M} the next day"
        )

    @property
    def summary(self) -> str:
        return f"daily {self.run_at:%H:%M} {self.timezone_name}"

    def serialize(self) -> dict[str, Any]:
        return {"timezone": self.timezone_name, "run_at": self.run_at.strftime("%H:%M")}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> SmscDailyTimetable:
        return cls(timezone=data["timezone"], run_at=data["run_at"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SmscDailyTimetable):
            return NotImplemented
        return self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash((self.timezone_name, self.run_at))

    def validate(self) -> None:
        try:
            zone(self.timezone_name)
        except SmscConfigError as exc:
            raise AirflowTimetableInvalid(str(exc)) from None

    def _now(self) -> DateTime:
        """The current time; the one place tests replace to pin "now"."""
        return DateTime.utcnow()

    def interval_for(self, day: date) -> DataInterval:
        """The data interval of ``day``: local midnight to the next local midnight."""
        start = instance(day_start(day, self._tz))
        end = instance(day_start(day + timedelta(days=1), self._tz))
        return DataInterval(start, end)

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        """A manual run (or ``airflow dags test DAG D``) loads the local day of its date."""
        return self.interval_for(local_day(run_after, self._tz))

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        if last_automated_data_interval is not None:
            day = local_day(last_automated_data_interval.start, self._tz) + timedelta(days=1)
        elif restriction.earliest is not None:
            # The local day containing the bound: a backfill's --from-date read as UTC
            # midnight is still the intended day in zones east of UTC (Moscow: 03:00).
            day = local_day(restriction.earliest, self._tz)
        else:
            return None
        if not restriction.catchup:
            newest = latest_complete_day(self._now(), self._tz, self.run_at)
            day = max(day, newest)
        if restriction.latest is not None and day > local_day(restriction.latest, self._tz):
            return None
        interval = self.interval_for(day)
        return DagRunInfo(
            run_after=instance(day_run_after(day, self._tz, self.run_at)),
            data_interval=interval,
        )
