"""SMSC sending statistics into PostgreSQL, run by Apache Airflow.

Names are imported lazily (PEP 562) so that a DAG file importing this package,
or the ``provider_info`` entry point, does not pay for Airflow, requests and
SQLAlchemy at parse time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS: dict[str, str] = {
    "SmscHook": "smsc_hook.client.hook",
    "StatReply": "smsc_hook.client.hook",
    "StatRow": "smsc_hook.client.models",
    "SmscStatsToPostgresOperator": "smsc_hook.airflow.operators",
    "SmscError": "smsc_hook.client.exceptions",
    "SmscFatalError": "smsc_hook.client.exceptions",
    "SmscRetryableError": "smsc_hook.client.exceptions",
    "SmscConfigError": "smsc_hook.client.exceptions",
    "SmscApiError": "smsc_hook.client.exceptions",
    "SmscParametersError": "smsc_hook.client.exceptions",
    "SmscAuthError": "smsc_hook.client.exceptions",
    "SmscIpBlockedError": "smsc_hook.client.exceptions",
    "SmscRateLimitedError": "smsc_hook.client.exceptions",
    "SmscUnknownApiError": "smsc_hook.client.exceptions",
    "SmscReplyError": "smsc_hook.client.exceptions",
    "SmscReplyValueError": "smsc_hook.client.exceptions",
    "SmscTransportError": "smsc_hook.client.exceptions",
    "build_dags": "smsc_hook.airflow.dag_factory",
}

__all__ = [
    "SmscApiError",
    "SmscAuthError",
    "SmscConfigError",
    "SmscError",
    "SmscFatalError",
    "SmscHook",
    "SmscIpBlockedError",
    "SmscParametersError",
    "SmscRateLimitedError",
    "SmscReplyError",
    "SmscReplyValueError",
    "SmscRetryableError",
    "SmscStatsToPostgresOperator",
    "SmscTransportError",
    "SmscUnknownApiError",
    "StatReply",
    "StatRow",
    "build_dags",
]

if TYPE_CHECKING:
    from smsc_hook.airflow.dag_factory import build_dags
    from smsc_hook.airflow.operators import SmscStatsToPostgresOperator
    from smsc_hook.client.exceptions import (
        SmscApiError,
        SmscAuthError,
        SmscConfigError,
        SmscError,
        SmscFatalError,
        SmscIpBlockedError,
        SmscParametersError,
        SmscRateLimitedError,
        SmscReplyError,
        SmscReplyValueError,
        SmscRetryableError,
        SmscTransportError,
        SmscUnknownApiError,
    )
    from smsc_hook.client.hook import SmscHook, StatReply
    from smsc_hook.client.models import StatRow


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'smsc_hook' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
