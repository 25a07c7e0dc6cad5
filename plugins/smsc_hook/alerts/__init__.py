"""Telling people: failure alerts (e-mail, webhook) and the "not loaded by" deadline.

Names load on first use: every task process parses the DAG file, which reads
:mod:`smsc_hook.alerts.config`; the callbacks and channels are imported only by a DAG
that has an alert channel or a deadline set up.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smsc_hook.alerts.callbacks import FailureAlert, deadline_alert, deadline_missed
    from smsc_hook.alerts.config import AlertSettings

_WHERE = {
    "AlertSettings": "smsc_hook.alerts.config",
    "FailureAlert": "smsc_hook.alerts.callbacks",
    "deadline_alert": "smsc_hook.alerts.callbacks",
    "deadline_missed": "smsc_hook.alerts.callbacks",
}

__all__ = ["AlertSettings", "FailureAlert", "deadline_alert", "deadline_missed"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'smsc_hook.alerts' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
