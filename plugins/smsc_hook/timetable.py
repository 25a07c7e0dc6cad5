"""The timetable under its 0.1 import path, so DAG versions serialized by 0.1 still load.

Airflow stores a DAG's timetable by import path and finds it again among the registered
plugin timetables; DAG versions and runs written by 0.1 name
``smsc_hook.timetable.SmscDailyTimetable``. New DAGs use
:class:`smsc_hook.airflow.timetable.SmscDailyTimetable`.
"""

from __future__ import annotations

from smsc_hook.airflow import timetable


class SmscDailyTimetable(timetable.SmscDailyTimetable):
    """The current timetable, found under the name 0.1 serialized."""
