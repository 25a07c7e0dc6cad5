"""Registers the SMSC timetable with Airflow, so the scheduler can deserialize the DAG.

Airflow scans ``plugins/`` for ``AirflowPlugin`` subclasses; ``plugins/.airflowignore``
keeps the scan to this file (the rest of ``smsc_hook`` is an ordinary package).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from smsc_hook.timetable import SmscDailyTimetable


class SmscPlugin(AirflowPlugin):
    name = "smsc"
    timetables = [SmscDailyTimetable]
