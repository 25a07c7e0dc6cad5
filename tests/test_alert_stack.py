"""Alerts, the deadline, StatsD metrics and OpenLineage events under a real scheduler.

One stack for the module (scheduler + api-server + dag-processor, LocalExecutor), one
backfill of two fixed past days with alerts (webhook + e-mail), ``SMSC_DEADLINE``,
StatsD and OpenLineage's file transport all configured, like a user would. The
simulator's first answer is an error 2 (that day fails at once, no retry) and the second
an error 9 (the other day retries after the window and loads). Local sinks receive what
Airflow sends: an HTTP server for the webhook, aiosmtpd for SMTP, a UDP socket for StatsD.

Time is scaled: a 2 s rate window, so the error 9 waits 7 s.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from email.message import Message
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from devtools import postgres
from devtools.airflow_stack import AirflowStack, running_stack
from devtools.reliability.harness import write_accounts
from devtools.simulator_process import RunningSimulator, running_simulator
from tests.conftest import SIM_TODAY
from tests.sinks import (
    SmtpSink,
    StatsdLine,
    UdpSink,
    WebhookSink,
    parse_statsd,
    require_statsd,
)
from tests.support import DAG_ID, airflow_connections, query, wait_for_runs

pytestmark = [pytest.mark.backfill, pytest.mark.timeout(600)]

DAYS = [date(2026, 11, 2), date(2026, 11, 3)]
RATE_WINDOW = 2.0
ALERT_TO = "ops@example.com"
ALERT_FROM = "airflow@example.com"


@dataclass
class Outcome:
    """What one backfill left behind, gathered once for the module's tests."""

    password: str
    runs: list[dict[str, Any]]
    task_instances: list[dict[str, Any]]
    webhook: list[dict[str, Any]]
    mails: list[Message]
    statsd: list[StatsdLine]
    ledger: list[tuple[str, int | None, int, int]]
    loads: list[tuple[int, int, int, int]]
    callbacks: list[tuple[str, str]]
    deadlines_missed: list[bool]
    lineage_events: list[dict[str, Any]]
    warehouse_host: tuple[str, int, str]
    sim_requests: list[dict[str, Any]] = field(default_factory=list)


def _wait_for_callbacks(metadata_url: str, count: int, timeout: float) -> list[tuple[str, str]]:
    """The deadline callbacks' (state, output), once ``count`` of them have finished."""
    engine = create_engine(metadata_url)
    deadline = time.monotonic() + timeout
    rows: list[tuple[str, str]] = []
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = [
                    (str(state), str(output or ""))
                    for state, output in conn.execute(
                        text("SELECT state, output FROM callback ORDER BY created_at")
                    ).all()
                ]
            if len(rows) >= count and all(state in ("success", "failed") for state, _ in rows):
                return rows
            time.sleep(1)
    finally:
        engine.dispose()
    raise AssertionError(f"deadline callbacks did not finish in {timeout:.0f} s: {rows}")


def _wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.5)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory, pg_server_url: str) -> Iterator[Outcome]:
    require_statsd()
    home = tmp_path_factory.mktemp("alerts")
    password = f"pw-{secrets.token_hex(8)}"
    accounts = write_accounts(home / "accounts.json", password)
    lineage_file = home / "openlineage.jsonl"
    args = ("--quiet", "--accounts", str(accounts), "--rate-limit", "1000")
    with (
        postgres.throwaway_database(pg_server_url) as warehouse_url,
        running_simulator(*args, "--today", SIM_TODAY.isoformat()) as sim,
        WebhookSink() as webhook,
        SmtpSink() as smtp,
        UdpSink() as udp,
    ):
        connections = airflow_connections(sim.url, warehouse_url, password=password)
        connections["smtp_default"] = {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": smtp.port,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10},
        }
        stack = AirflowStack(
            home=home / "airflow",
            connections=connections,
            extra_env={
                "SMSC_LOOKBACK_DAYS": "0",
                "SMSC_START_DATE": DAYS[0].isoformat(),
                # No scheduled run: every run is the backfill's.
                "SMSC_END_DATE": DAYS[-1].isoformat(),
                "SMSC_RATE_WINDOW_SECONDS": str(RATE_WINDOW),
                "SMSC_ALERT_WEBHOOK_URL": webhook.url,
                "SMSC_ALERT_EMAIL_TO": ALERT_TO,
                "SMSC_ALERT_EMAIL_FROM": ALERT_FROM,
                "SMSC_DEADLINE": "09:00",
                "AIRFLOW__METRICS__STATSD_ON": "True",
                "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                "AIRFLOW__METRICS__STATSD_PORT": str(udp.port),
                "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                    {"type": "file", "log_file_path": str(lineage_file), "append": True}
                ),
                "AIRFLOW__OPENLINEAGE__NAMESPACE": "smsc-test",
            },
        )
        with running_stack(stack):
            stack.python("-m", "smsc_hook.bootstrap", "--no-api-call")
            stack.wait_for_dag(DAG_ID)
            _load_faults(sim)
            stack.unpause(DAG_ID)
            stack.backfill(DAG_ID, DAYS[0], DAYS[-1], max_active_runs=1)
            runs = wait_for_runs(stack, "backfill", len(DAYS), timeout=300)
            callbacks = _wait_for_callbacks(stack.metadata, len(DAYS), timeout=120)
            # UDP and SMTP are asynchronous: give the last datagrams a moment.
            _wait_for(lambda: len(smtp.messages) >= 1, 10)
            time.sleep(2)
            task_instances = stack.task_instances(DAG_ID)
            missed = [bool(m) for (m,) in query(stack.metadata, "SELECT missed FROM deadline")]
        ledger = query(
            warehouse_url,
            "SELECT outcome, error_code, latency_ms, waited_ms FROM smsc.api_calls ORDER BY id",
        )
        loads = query(
            warehouse_url,
            "SELECT row_count, inserted, updated, deleted FROM smsc.load_log ORDER BY id",
        )
        url = create_engine(warehouse_url).url
        lines = [parse_statsd(line) for line in udp.lines if line.startswith("airflow.smsc.")]
        events = [
            json.loads(line)
            for line in (lineage_file.read_text().splitlines() if lineage_file.exists() else [])
            if line.strip()
        ]
        yield Outcome(
            password=password,
            runs=runs,
            task_instances=task_instances,
            webhook=list(webhook.bodies),
            mails=list(smtp.messages),
            statsd=lines,
            ledger=[tuple(row) for row in ledger],
            loads=[tuple(row) for row in loads],
            callbacks=callbacks,
            deadlines_missed=missed,
            lineage_events=events,
            warehouse_host=(str(url.host), int(url.port or 5432), str(url.database)),
            sim_requests=sim.control.requests(),
        )


def _load_faults(sim: RunningSimulator) -> None:
    """The first call meets an error 2 (fails at once), the second an error 9 (retried)."""
    sim.control.set_faults(
        [{"kind": "error", "code": 2, "count": 1}, {"kind": "error", "code": 9, "count": 1}]
    )


def test_one_alert_for_the_failed_try_none_for_the_retried_error_9(outcome: Outcome) -> None:
    loads = sorted(
        (ti["try_number"], ti["state"])
        for ti in outcome.task_instances
        if ti["task_id"] == "load_day"
    )
    # One day: error 9, retried, loaded (try 2); the other: error 2, failed at once (try 1).
    assert loads == [(1, "failed"), (2, "success")], loads
    assert sorted(r["state"] for r in outcome.runs) == ["failed", "success"]

    assert len(outcome.webhook) == 1, outcome.webhook
    alert = outcome.webhook[0]
    assert alert["kind"] == "task_failed"
    assert alert["dag_id"] == DAG_ID
    assert alert["task_id"] == "load_day"
    assert alert["run_type"] == "backfill"
    assert alert["error_class"] == "SmscAuthError"
    assert "SMSC error 2" in alert["error"]
    assert "Fix the connection" in alert["fix"]
    assert alert["account"] == "demo"
    assert alert["try_number"] == 1
    (day,) = alert["days"]
    assert day in {d.isoformat() for d in DAYS}

    assert len(outcome.mails) == 1, [m["Subject"] for m in outcome.mails]
    mail = outcome.mails[0]
    assert (mail["To"], mail["From"]) == (ALERT_TO, ALERT_FROM)
    assert mail["Subject"] == f"[SMSC] {alert['summary']}"
    assert "SmscAuthError" in mail["Subject"]
    body = "".join(
        part.get_payload(decode=True).decode(errors="replace")
        for part in mail.walk()
        if not part.is_multipart()
    )
    assert "Fix the connection" in body
    assert alert["run_id"] in body

    everything = json.dumps(outcome.webhook) + body + str(mail)
    assert outcome.password not in everything


def test_the_deadline_fires_for_the_backfill_but_never_alerts(outcome: Outcome) -> None:
    # Both runs' deadlines (D+1 09:00) were long past: Airflow ran the callback for each…
    assert outcome.deadlines_missed == [True] * len(DAYS)
    assert [state for state, _ in outcome.callbacks] == ["success"] * len(DAYS), outcome.callbacks
    # …and it sent nothing: the only alert is the failed task's.
    assert [a["kind"] for a in outcome.webhook] == ["task_failed"]
    assert all("not loaded by" not in (m["Subject"] or "") for m in outcome.mails)


def test_statsd_metrics_of_the_backfill_equal_the_ledger(outcome: Outcome) -> None:
    calls = [line for line in outcome.statsd if line.name == "airflow.smsc.api_calls"]
    sent = Counter()
    for line in calls:
        assert (line.kind, line.tags["account"]) == ("c", "demo")
        sent[(line.tags["outcome"], line.tags["error_code"])] += int(line.value)
    in_ledger = Counter(
        (outcome_, "none" if code is None else str(code)) for outcome_, code, _, _ in outcome.ledger
    )
    assert (
        sent
        == in_ledger
        == Counter({("ok", "none"): 1, ("api_error", "9"): 1, ("api_error", "2"): 1})
    )

    latencies = sorted(
        line.value for line in outcome.statsd if line.name == "airflow.smsc.api_call_latency"
    )
    assert latencies == sorted(float(latency) for _, _, latency, _ in outcome.ledger)
    waits = sorted(line.value for line in outcome.statsd if line.name == "airflow.smsc.pacer_wait")
    assert waits == sorted(float(waited) for _, _, _, waited in outcome.ledger)
    assert all(
        line.kind == "ms" for line in outcome.statsd if line.name.endswith(("latency", "wait"))
    )

    def total(name: str) -> int:
        return sum(
            int(line.value) for line in outcome.statsd if line.name == f"airflow.smsc.{name}"
        )

    assert total("days_loaded") == len(outcome.loads) == 1
    assert total("rows_loaded") == sum(row[0] for row in outcome.loads) > 0
    assert total("rows_inserted") == sum(row[1] for row in outcome.loads)
    assert total("rows_changed") == sum(row[2] for row in outcome.loads)
    assert total("rows_deleted") == sum(row[3] for row in outcome.loads)
    assert total("alerts_sent") == 2  # the webhook and the e-mail of the one failure


def test_openlineage_events_name_the_real_hosts_and_tables(outcome: Outcome) -> None:
    host, port, database = outcome.warehouse_host
    complete = [
        e
        for e in outcome.lineage_events
        if e.get("eventType") == "COMPLETE" and e["job"]["name"].endswith(".load_day")
    ]
    assert len(complete) == 1, [
        (e.get("eventType"), e["job"]["name"]) for e in outcome.lineage_events
    ]
    event = complete[0]
    (source,) = event["inputs"]
    assert source["name"] == "demo"
    assert source["namespace"].startswith("http://127.0.0.1:")
    outputs = {o["name"]: o for o in event["outputs"]}
    assert {o["namespace"] for o in event["outputs"]} == {f"postgres://{host}:{port}"}
    assert f"{database}.smsc.stat_day" in outputs
    rows = outcome.loads[0][0]
    assert (
        outputs[f"{database}.smsc.stat_day"]["outputFacets"]["outputStatistics"]["rowCount"] == rows
    )
    assert outcome.password not in json.dumps(outcome.lineage_events)
