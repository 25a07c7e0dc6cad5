"""Registers the SMSC timetable with Airflow, so the scheduler can deserialize the DAG.

Installed, the package's ``airflow.plugins`` entry point names :class:`SmscPlugin`. A
deployment that only puts ``plugins/`` on its path gets it through ``plugins/smsc_plugin.py``.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from smsc_hook import timetable as timetable_0_1
from smsc_hook.airflow.timetable import SmscDailyTimetable

#: The entry point that registers this plugin when the package is installed.
ENTRY_POINT = "smsc_hook.airflow.plugin:SmscPlugin"


class SmscPlugin(AirflowPlugin):
    name = "smsc"
    # The 0.1 path too: DAG versions serialized by 0.1 name it.
    timetables = [SmscDailyTimetable, timetable_0_1.SmscDailyTimetable]


def installed() -> bool:
    """Whether an installed distribution registers :class:`SmscPlugin` (entry point)."""
    from importlib.metadata import entry_points

    return any(ep.value == ENTRY_POINT for ep in entry_points(group="airflow.plugins"))
