"""Telling people: failure alerts (e-mail, webhook) and the "not loaded by" deadline."""

from smsc_hook.alerts.callbacks import FailureAlert, deadline_alert, deadline_missed
from smsc_hook.alerts.config import AlertSettings

__all__ = ["AlertSettings", "FailureAlert", "deadline_alert", "deadline_missed"]
