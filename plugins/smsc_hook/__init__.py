"""SMSC sending statistics into PostgreSQL, run by Apache Airflow.

Names are imported lazily (PEP 562) so that a DAG file importing this package,
or the ``provider_info`` entry point, does not pay for Airflow, requests and
SQLAlchemy at parse time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "SmscHook": "smsc_hook.hook",
    "StatReply": "smsc_hook.hook",
    "StatRow": "smsc_hook.models",
    "SmscStatsToPostgresOperator": "smsc_hook.operator",
    "SmscError": "smsc_hook.exceptions",
    "SmscFatalError": "smsc_hook.exceptions",
    "SmscRetryableError": "smsc_hook.exceptions",
    "SmscConfigError": "smsc_hook.exceptions",
    "SmscApiError": "smsc_hook.exceptions",
    "SmscParametersError": "smsc_hook.exceptions",
    "SmscAuthError": "smsc_hook.exceptions",
    "SmscIpBlockedError": "smsc_hook.exceptions",
    "SmscRateLimitedError": "smsc_hook.exceptions",
    "SmscUnknownApiError": "smsc_hook.exceptions",
    "SmscReplyError": "smsc_hook.exceptions",
    "SmscReplyValueError": "smsc_hook.exceptions",
    "SmscTransportError": "smsc_hook.exceptions",
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
]

if TYPE_CHECKING:
    from smsc_hook.exceptions import (
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
    from smsc_hook.hook import SmscHook, StatReply
    from smsc_hook.models import StatRow
    from smsc_hook.operator import SmscStatsToPostgresOperator


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'smsc_hook' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
