"""The 0.1 import path of :func:`build_dags`, so a DAG file copied from 0.1 keeps working.

New DAG files use ``from smsc_hook import build_dags``; the code is
:mod:`smsc_hook.airflow.dag_factory`.
"""

from __future__ import annotations

from smsc_hook.airflow.dag_factory import build_dags

__all__ = ["build_dags"]
