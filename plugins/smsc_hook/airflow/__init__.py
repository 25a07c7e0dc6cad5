"""The Airflow layer: operators, sensor, timetable, DAG factory, planning, settings, retry
policy, bootstrap, plugin, provider info and the ``airflow smsc`` CLI.

It composes the client and the warehouse; nothing below it imports from here.
"""
