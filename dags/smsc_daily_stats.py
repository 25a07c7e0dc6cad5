"""Airflow DAGs: SMSC sending statistics into PostgreSQL, one DAG per SMSC account.

Configured by SMSC_* environment variables (see the README); parsing does no I/O.
"""

from airflow.sdk import get_parsing_context

from smsc_hook import build_dags

# A task's process parses this file for its one DAG, which Airflow's parsing context
# names; the dag-processor (no context) builds every account's.
globals().update(build_dags(only=get_parsing_context().dag_id))
