"""The SMSC timetable for a deployment that uses ``plugins/`` without installing the package.

Airflow imports every file in ``plugins/``. When the package is installed, its
``airflow.plugins`` entry point registers the plugin already, and a second ``smsc`` plugin
would be a plugin import error; so this file then defines nothing.
"""

from __future__ import annotations

from smsc_hook.airflow import plugin

if not plugin.installed():
    from smsc_hook.airflow.plugin import SmscPlugin

    __all__ = ["SmscPlugin"]
