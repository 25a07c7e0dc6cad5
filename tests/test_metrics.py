"""The ``smsc.*`` metrics through Airflow's real StatsD logger to a local UDP port, and
their cost when no backend is configured: nothing is sent, nothing heavy is imported.

The counts of a whole backfill against the ledger are in test_alert_stack.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
from airflow.sdk._shared.observability.metrics.statsd_logger import get_statsd_logger
from airflow.sdk.observability import stats

from devtools.airflow_stack import REPO_ROOT
from smsc_hook.observability import metrics
from tests.sinks import StatsdLine, UdpSink, parse_statsd, require_statsd

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def statsd() -> Iterator[UdpSink]:
    """Airflow's StatsD logger (InfluxDB-style tags) aimed at a local UDP sink."""
    require_statsd()
    from statsd import StatsClient

    with UdpSink() as sink:
        stats.initialize(
            factory=lambda: get_statsd_logger(
                stats_class=StatsClient,
                host="127.0.0.1",
                port=sink.port,
                prefix="airflow",
                influxdb_tags_enabled=True,
                statsd_influxdb_enabled=True,
            ),
            export_legacy_names=False,
        )
        try:
            yield sink
        finally:
            stats.initialize(factory=NoStatsLogger, export_legacy_names=False)


def received(sink: UdpSink, count: int) -> list[StatsdLine]:
    deadline = time.monotonic() + 5
    while len(sink.lines) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [parse_statsd(line) for line in sink.lines]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("demo", "demo", id="plain"),
        pytest.param(None, "none", id="none"),
        pytest.param(9, "9", id="number"),
        pytest.param("a,b=c d", "a_b_c_d", id="influx-separators"),
        pytest.param("shop@corp.ru", "shop_corp.ru", id="login-with-at"),
    ],
)
def test_tag_values_are_safe_for_every_backend(value: object, expected: str) -> None:
    assert metrics.tag(value) == expected


def test_gauge_and_reconciliation_metrics_carry_the_account(statsd: UdpSink) -> None:
    metrics.gap_days("demo", "main", 4)
    metrics.reconciliation("demo", "balance2", "differs", 2)
    lines = received(statsd, 3)
    assert lines == [
        StatsdLine("airflow.smsc.gap_days", {"account": "demo", "series": "main"}, 4.0, "g"),
        StatsdLine(
            "airflow.smsc.reconciliation_checks",
            {"account": "demo", "series": "balance2", "status": "differs"},
            1.0,
            "c",
        ),
        StatsdLine(
            "airflow.smsc.reconciliation_mismatches",
            {"account": "demo", "series": "balance2"},
            2.0,
            "c",
        ),
    ]


def test_a_call_is_counted_by_outcome_and_error_code_and_timed(statsd: UdpSink) -> None:
    metrics.api_call("demo", "api_error", 9, 120)
    metrics.pacer_wait("demo", 61000)
    lines = received(statsd, 3)
    tags = {"account": "demo", "outcome": "api_error", "error_code": "9"}
    assert lines == [
        StatsdLine("airflow.smsc.api_calls", tags, 1.0, "c"),
        StatsdLine("airflow.smsc.api_call_latency", tags, 120.0, "ms"),
        StatsdLine("airflow.smsc.pacer_wait", {"account": "demo"}, 61000.0, "ms"),
    ]


def test_without_a_backend_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    stats.initialize(factory=NoStatsLogger, export_legacy_names=False)
    opened: list[Any] = []
    real_socket = socket.socket

    def recording_socket(*args: Any, **kwargs: Any) -> socket.socket:
        opened.append(args)
        return real_socket(*args, **kwargs)

    monkeypatch.setattr(socket, "socket", recording_socket)
    metrics.api_call("demo", "ok", None, 5)
    metrics.day_loaded("demo", "main", rows=3, inserted=3, changed=0, deleted=0)
    metrics.gap_days("demo", "main", 0)
    metrics.alert("task_failed", "webhook", sent=True)
    assert opened == []


def _modules_after_parse(**env: str) -> set[str]:
    """The modules a fresh interpreter holds after parsing the DAG file with ``env``."""
    script = f"""
import json, runpy, sys
runpy.run_path({str(REPO_ROOT / "dags" / "smsc_daily_stats.py")!r})
print(json.dumps(sorted(sys.modules)))
"""
    base = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{REPO_ROOT / 'plugins'}:{REPO_ROOT}",
        "SMSC_START_DATE": "2026-01-01",
        "AIRFLOW__METRICS__STATSD_ON": "True",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_configuring_alerts_adds_no_heavy_import_to_dag_parsing(tmp_path: Any) -> None:
    plain = _modules_after_parse(AIRFLOW_HOME=str(tmp_path))
    configured = _modules_after_parse(
        AIRFLOW_HOME=str(tmp_path),
        SMSC_ALERT_WEBHOOK_URL="http://127.0.0.1:9/hook",
        SMSC_ALERT_EMAIL_TO="ops@example.com",
        SMSC_DEADLINE="09:00",
    )
    added = configured - plain
    assert all(m.startswith(("smsc_hook.", "airflow.sdk.definitions.")) for m in added), added
    for heavy in (
        "airflow.providers.smtp.notifications.smtp",
        "airflow.providers.smtp.hooks.smtp",
        "airflow.providers.openlineage.extractors",
        "openlineage.client",
        "aiosmtpd",
    ):
        assert heavy not in configured, heavy
