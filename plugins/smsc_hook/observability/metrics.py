"""The ``smsc.*`` metrics, sent through Airflow's configured backend (StatsD, Datadog, OTel).

Every metric is tagged by ``account``. Plain StatsD has no tags: Airflow appends them to the
name InfluxDB-style (``smsc.api_calls,account=demo,outcome=ok``) when
``[metrics] statsd_influxdb_enabled`` is on, which statsd_exporter and Telegraf read as
labels; without it the tags are dropped and each metric sums over all accounts. Datadog and
OpenTelemetry carry the tags natively. With no metrics backend configured Airflow's backend
is a no-op: nothing is imported at DAG parse time and nothing is sent.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

#: API calls, one per ledger row (tags: account, outcome, error_code).
API_CALLS = "smsc.api_calls"
#: Milliseconds from the request to the parsed reply (or the failure), per call.
API_CALL_LATENCY = "smsc.api_call_latency"
#: Milliseconds a call waited for a slot in the rate limit (the ledger's ``waited_ms``).
PACER_WAIT = "smsc.pacer_wait"
#: Rows of a fetched day stored, and of those: new, changed (revision) and removed.
ROWS_LOADED = "smsc.rows_loaded"
ROWS_INSERTED = "smsc.rows_inserted"
ROWS_CHANGED = "smsc.rows_changed"
ROWS_DELETED = "smsc.rows_deleted"
#: Days (windows) landed in the warehouse.
DAYS_LOADED = "smsc.days_loaded"
#: Days older than the lookback that were never loaded (gauge, set by ``check_gaps``).
GAP_DAYS = "smsc.gap_days"
#: Logins whose stored month differs from SMSC's month total, per reconciliation check.
RECONCILIATION_MISMATCHES = "smsc.reconciliation_mismatches"
#: Month checks by status (matched, differs, incomplete).
RECONCILIATION_CHECKS = "smsc.reconciliation_checks"
#: Alerts handed to a channel, and alerts a channel refused (tags: kind, channel).
ALERTS_SENT = "smsc.alerts_sent"
ALERTS_FAILED = "smsc.alerts_failed"

#: Airflow's stat name check allows these only; InfluxDB-style tags become part of the name.
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_./-]")


def tag(value: object) -> str:
    """A tag value every backend accepts (a login's ``@`` or a space becomes ``_``)."""
    return _TAG_UNSAFE.sub("_", "none" if value is None else str(value))[:100]


def _tags(**tags: object) -> dict[str, str]:
    return {key: tag(value) for key, value in tags.items()}


def _send(kind: str, stat: str, value: Any, tags: dict[str, str]) -> None:
    # Metrics never fail a load: a broken backend is logged, the call goes on.
    try:
        from airflow.sdk.observability import stats

        if kind == "incr":
            stats.incr(stat, count=int(value), tags=tags)
        elif kind == "gauge":
            stats.gauge(stat, value, tags=tags)
        else:
            stats.timing(stat, value, tags=tags)
    except Exception:
        log.warning("could not send metric %s", stat, exc_info=True)


def api_call(account: str, outcome: str, error_code: int | None, latency_ms: int) -> None:
    """One finished API call as the ledger recorded it."""
    tags = _tags(account=account, outcome=outcome, error_code=error_code)
    _send("incr", API_CALLS, 1, tags)
    _send("timing", API_CALL_LATENCY, timedelta(milliseconds=latency_ms), tags)


def pacer_wait(account: str, waited_ms: int) -> None:
    """How long a granted call waited for its slot."""
    _send("timing", PACER_WAIT, timedelta(milliseconds=waited_ms), _tags(account=account))


def day_loaded(
    account: str, series: str, *, rows: int, inserted: int, changed: int, deleted: int
) -> None:
    """One day stored: its rows, and how many were new, changed or removed."""
    tags = _tags(account=account, series=series)
    _send("incr", DAYS_LOADED, 1, tags)
    for stat, count in (
        (ROWS_LOADED, rows),
        (ROWS_INSERTED, inserted),
        (ROWS_CHANGED, changed),
        (ROWS_DELETED, deleted),
    ):
        _send("incr", stat, count, tags)


def gap_days(account: str, series: str, days: int) -> None:
    """The number of days older than the lookback window that were never loaded."""
    _send("gauge", GAP_DAYS, days, _tags(account=account, series=series))


def reconciliation(account: str, series: str, status: str, mismatches: int) -> None:
    """One month check: its status and the logins that differ."""
    tags = _tags(account=account, series=series)
    _send("incr", RECONCILIATION_CHECKS, 1, {**tags, "status": tag(status)})
    _send("incr", RECONCILIATION_MISMATCHES, mismatches, tags)


def alert(kind: str, channel: str, *, sent: bool) -> None:
    """An alert handed to ``channel`` (or refused by it)."""
    _send("incr", ALERTS_SENT if sent else ALERTS_FAILED, 1, _tags(kind=kind, channel=channel))
