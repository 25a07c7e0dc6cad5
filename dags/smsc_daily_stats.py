"""Airflow DAGs: SMSC sending statistics into PostgreSQL, one DAG per SMSC account.

Configured by SMSC_* environment variables (see the README); parsing does no I/O.
"""

from smsc_hook import build_dags

globals().update(build_dags())
