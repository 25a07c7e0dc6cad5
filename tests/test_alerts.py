"""Alerts without a scheduler: settings, the body (fix, no secret), delivery, the deadline.

Delivery goes to real local sinks (an HTTP server, aiosmtpd); the deadline's callback
reads a real throwaway warehouse. The scheduler-driven cases are in test_alert_stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, time
from typing import Any

import pytest
from sqlalchemy import Engine

from devtools.airflow_stack import postgres_connection
from simulator.control import SimulatorControl
from smsc_hook.airflow.dag_factory import build_dags
from smsc_hook.airflow.settings import PipelineSettings
from smsc_hook.alerts.callbacks import FailureAlert, deadline_interval, deadline_missed
from smsc_hook.alerts.channels import deliver
from smsc_hook.alerts.config import AlertSettings
from smsc_hook.alerts.message import MAX_ERROR_CHARS, failure_alert, fix_for
from smsc_hook.checks.gaps import SmscGapsError
from smsc_hook.checks.reconciliation import SmscReconciliationError
from smsc_hook.client.exceptions import (
    SmscAuthError,
    SmscConfigError,
    SmscDisputedReplyError,
    SmscRateLimitedError,
    SmscTransportError,
)
from tests.sinks import SmtpSink, WebhookSink
from tests.support import ACCOUNT, preload

pytestmark = pytest.mark.timeout(120)
CANARY = "pw-Canary-7f3a9c"
DAY = date(2026, 11, 2)


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    with WebhookSink() as sink:
        yield sink


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        conn = {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": sink.port,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10},
        }
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
        yield sink


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, AlertSettings(), id="nothing-set"),
        pytest.param(
            {"SMSC_ALERT_EMAIL_TO": "a@x.org; b@x.org", "SMSC_ALERT_SMTP_CONN_ID": "mail"},
            AlertSettings(email_to=("a@x.org", "b@x.org"), smtp_conn_id="mail"),
            id="email",
        ),
        pytest.param(
            {"SMSC_ALERT_WEBHOOK_URL": "https://hooks.example/x", "SMSC_DEADLINE": "09:30"},
            AlertSettings(webhook_url="https://hooks.example/x", deadline=time(9, 30)),
            id="webhook-deadline",
        ),
    ],
)
def test_settings_from_env(env: dict[str, str], expected: AlertSettings) -> None:
    assert AlertSettings.from_env(env) == expected


@pytest.mark.parametrize(
    ("env", "named"),
    [
        pytest.param({"SMSC_ALERT_EMAIL_TO": "ops"}, "SMSC_ALERT_EMAIL_TO", id="not-an-address"),
        pytest.param(
            {"SMSC_ALERT_WEBHOOK_URL": "ftp://h/secret-token"},
            "SMSC_ALERT_WEBHOOK_URL",
            id="webhook-scheme",
        ),
        pytest.param({"SMSC_DEADLINE": "9 am"}, "SMSC_DEADLINE", id="deadline"),
        pytest.param(
            {"SMSC_ALERT_WEBHOOK_TIMEOUT_SECONDS": "0"},
            "SMSC_ALERT_WEBHOOK_TIMEOUT_SECONDS",
            id="timeout",
        ),
    ],
)
def test_a_bad_setting_names_its_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SmscConfigError, match=named) as raised:
        AlertSettings.from_env(env)
    assert "secret-token" not in str(raised.value)


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        pytest.param(SmscAuthError(2, "authorise error"), "Fix the connection", id="error-2"),
        pytest.param(SmscRateLimitedError(9, "too many"), "outside this pipeline", id="error-9"),
        pytest.param(SmscTransportError("reset"), "check the host", id="transport"),
        pytest.param(SmscDisputedReplyError("x"), "reprocess-behavior", id="disputed"),
        pytest.param(SmscGapsError("3 day(s)"), "python -m smsc_hook.gaps", id="gaps"),
        pytest.param(SmscReconciliationError("x"), "SMSC support", id="reconciliation"),
        pytest.param(SmscConfigError("warehouse schema is behind (004)"), "bootstrap", id="schema"),
        pytest.param(SmscConfigError("SMSC_TIMEZONE bad"), "SMSC_* variable", id="config"),
    ],
)
def test_the_alert_names_the_known_fix(error: BaseException, fix: str) -> None:
    found = fix_for(error)
    assert found is not None
    assert fix in found


def test_an_unknown_error_has_no_made_up_fix() -> None:
    assert fix_for(RuntimeError("boom")) is None


def test_no_secret_reaches_the_body_and_the_error_is_bounded() -> None:
    alert = failure_alert(
        dag_id="smsc_daily_stats",
        run_id="scheduled__2026-11-03",
        run_type="scheduled",
        task_id="load_day",
        map_index=0,
        try_number=1,
        account=ACCOUNT,
        days=[DAY.isoformat()],
        exception=SmscAuthError(2, f"psw={CANARY} rejected " + "x" * 5000),
        secrets=[CANARY],
    )
    for body in (json.dumps(alert.payload()), alert.text(), alert.html(), alert.subject()):
        assert CANARY not in body
    assert alert.error is not None
    assert alert.error.startswith("SMSC error 2: psw=*** rejected")
    assert len(alert.error) <= MAX_ERROR_CHARS + 2
    assert alert.fix is not None
    assert "Fix the connection" in alert.fix


def test_failure_alert_masks_the_connection_password_and_reaches_both_sinks(
    webhook: WebhookSink, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch, warehouse_url: str
) -> None:
    smsc = {"conn_type": "smsc", "host": "smsc.ru", "login": ACCOUNT, "password": CANARY}
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_DEFAULT", json.dumps(smsc))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMSC_WAREHOUSE", json.dumps(postgres_connection(warehouse_url))
    )
    settings = AlertSettings(
        email_to=("ops@example.com",), email_from="af@example.com", webhook_url=webhook.url
    )
    callback = FailureAlert(
        settings=settings,
        conn_id="smsc_default",
        warehouse_conn_id="smsc_warehouse",
        timezone="Europe/Moscow",
    )

    class TaskInstance:
        dag_id, run_id, task_id, map_index, try_number = ("d", "r", "load_day", 3, 2)
        log_url = None

    class Task:
        day = DAY.isoformat()

    class DagRun:
        run_type = "scheduled"

    # The exception echoes the password, as a careless library might.
    error = SmscTransportError(f"POST https://smsc.ru/sys/get.php?psw={CANARY} reset")
    callback({"ti": TaskInstance(), "task": Task(), "dag_run": DagRun(), "exception": error})

    (body,) = webhook.bodies
    assert body["days"] == [DAY.isoformat()]
    assert (body["map_index"], body["try_number"], body["account"]) == (3, 2, ACCOUNT)
    (mail,) = smtp.messages
    assert CANARY not in json.dumps(body)
    assert CANARY not in mail.as_string()
    assert "psw=***" in body["error"]


def test_an_unreachable_webhook_is_logged_and_does_not_raise(webhook: WebhookSink) -> None:
    url = webhook.url
    webhook.server.server_close()  # nothing listens there any more
    alert = failure_alert(
        dag_id="d", run_id="r", run_type="manual", task_id="t", map_index=None,
        try_number=1, account=None, days=[], exception=None,
    )  # fmt: skip
    assert deliver(alert, AlertSettings(webhook_url=url, webhook_timeout=2)) == []


def test_nothing_is_attached_when_alerts_are_not_configured() -> None:
    settings = PipelineSettings.from_env({"SMSC_START_DATE": "2026-01-01"})
    dag = build_dags(settings, AlertSettings())["smsc_daily_stats"]
    assert not dag.deadline
    assert all(not task.on_failure_callback for task in dag.tasks)


def test_every_task_alerts_and_the_deadline_is_d_plus_one_at_the_local_time() -> None:
    settings = PipelineSettings.from_env({"SMSC_START_DATE": "2026-01-01"})
    alerts = AlertSettings(webhook_url="http://127.0.0.1:9/x", deadline=time(9, 0))
    dag = build_dags(settings, alerts)["smsc_daily_stats"]
    assert all(isinstance(c, FailureAlert) for task in dag.tasks for c in task.on_failure_callback)
    assert {len(task.on_failure_callback) for task in dag.tasks} == {1}
    (deadline,) = dag.deadline
    assert deadline.interval == deadline_interval(time(9, 0))
    assert deadline.callback.path == "smsc_hook.alerts.callbacks.deadline_missed"
    assert deadline.callback.kwargs["deadline"] == "09:00"


@pytest.fixture
def deadline_env(
    fast_simulator: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch, webhook: WebhookSink
) -> dict[str, str]:
    smsc = {"conn_type": "smsc", "host": fast_simulator.url, "login": ACCOUNT, "password": "p"}
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_DEFAULT", json.dumps(smsc))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMSC_WAREHOUSE",
        json.dumps(postgres_connection(engine.url.render_as_string(hide_password=False))),
    )
    monkeypatch.setenv("SMSC_ALERT_WEBHOOK_URL", webhook.url)
    return {
        "account": "",
        "conn_id": "smsc_default",
        "warehouse_conn_id": "smsc_warehouse",
        "timezone": "Europe/Moscow",
        "deadline": "09:00",
        # The callback runs on D+1 (the day after the run's day, 2026-11-02).
        "today": date(2026, 11, 3),
    }


def _context(run_type: str) -> dict[str, Any]:
    # As the scheduler sends it: the DagRun as JSON (D 00:00 Moscow is D-1 21:00 UTC).
    return {
        "dag_run": {
            "dag_id": "smsc_daily_stats",
            "dag_run_id": f"{run_type}__2026-11-02",
            "run_type": run_type,
            "logical_date": "2026-11-01T21:00:00Z",
            "data_interval_start": "2026-11-01T21:00:00Z",
        },
        "deadline": {"id": "x", "deadline_time": "2026-11-03T06:00:00Z"},
    }


def test_a_scheduled_day_not_loaded_by_the_deadline_alerts_once(
    deadline_env: dict[str, str], webhook: WebhookSink
) -> None:
    decision = deadline_missed(_context("scheduled"), **deadline_env)
    assert decision.startswith("2026-11-02 (main) not loaded by 09:00: alerted (webhook)")
    (alert,) = webhook.bodies
    assert alert["kind"] == "not_loaded_by_deadline"
    assert alert["days"] == ["2026-11-02"]
    assert alert["account"] == ACCOUNT
    assert "backfill create --dag-id smsc_daily_stats --from-date 2026-11-02" in alert["fix"]


def test_a_loaded_day_does_not_alert(
    deadline_env: dict[str, str],
    webhook: WebhookSink,
    warehouse_url: str,
    fast_simulator: Any,
) -> None:
    control: SimulatorControl = fast_simulator.control
    preload(warehouse_url, control, [DAY])
    assert (
        deadline_missed(_context("scheduled"), **deadline_env) == "2026-11-02 is loaded: no alert"
    )
    assert webhook.bodies == []


def test_a_catch_up_day_past_its_deadline_does_not_alert(
    deadline_env: dict[str, str], webhook: WebhookSink
) -> None:
    """Catch-up runs are scheduled runs created after their deadline: one alert per
    caught-up day would be a storm, and the deadline means yesterday."""
    late = {**deadline_env, "today": date(2026, 11, 9)}
    decision = deadline_missed(_context("scheduled"), **late)
    assert decision == "skipped: 2026-11-02 is a catch-up day, not yesterday"
    assert webhook.bodies == []


def test_a_day_missing_only_in_another_series_alerts(
    deadline_env: dict[str, str],
    webhook: WebhookSink,
    warehouse_url: str,
    fast_simulator: Any,
) -> None:
    preload(warehouse_url, fast_simulator.control, [DAY])
    both = {**deadline_env, "series": ["main", "balance2"]}
    decision = deadline_missed(_context("scheduled"), **both)
    assert decision.startswith("2026-11-02 (balance2) not loaded by 09:00: alerted")
    assert len(webhook.bodies) == 1


@pytest.mark.parametrize("run_type", ["backfill", "manual", "asset_triggered"])
def test_backfill_and_manual_runs_never_alert(
    deadline_env: dict[str, str], webhook: WebhookSink, run_type: str
) -> None:
    assert deadline_missed(_context(run_type), **deadline_env).startswith("skipped:")
    assert webhook.bodies == []


def test_the_serialized_dag_holds_no_webhook_url_or_address() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    settings = PipelineSettings.from_env({"SMSC_START_DATE": "2026-01-01"})
    alerts = AlertSettings(
        webhook_url="https://hooks.example/x?token=S3CRET-T0KEN",
        email_to=("ops@example.com",),
        deadline=time(9, 0),
    )
    dag = build_dags(settings, alerts)["smsc_daily_stats"]
    serialized = json.dumps(DagSerialization.to_dict(dag), default=str)
    assert "S3CRET-T0KEN" not in serialized
    assert "ops@example.com" not in serialized
    assert "smsc_hook.alerts.callbacks.deadline_missed" in serialized


@pytest.mark.parametrize(
    ("alerts", "schedule_time", "message"),
    [
        pytest.param(
            AlertSettings(deadline=time(9, 0)), "03:00", "no alert channel is", id="no-channel"
        ),
        pytest.param(
            AlertSettings(webhook_url="http://127.0.0.1:9/x", deadline=time(3, 0)),
            "03:00",
            "is not after SMSC_SCHEDULE_TIME=03:00",
            id="at-run-start",
        ),
        pytest.param(
            AlertSettings(webhook_url="http://127.0.0.1:9/x", deadline=time(5, 30)),
            "06:00",
            "SMSC_DEADLINE=05:30 is not after",
            id="before-run-start",
        ),
    ],
)
def test_a_deadline_that_could_only_misfire_is_a_configuration_error(
    alerts: AlertSettings, schedule_time: str, message: str
) -> None:
    """A deadline with nobody to tell, or one that passes before the day's run even starts
    (it would alert every day), fails the DAG's parse with the fix."""
    settings = PipelineSettings.from_env(
        {"SMSC_START_DATE": "2026-01-01", "SMSC_SCHEDULE_TIME": schedule_time}
    )
    with pytest.raises(SmscConfigError, match=message):
        build_dags(settings, alerts)


def test_a_dag_file_copied_from_0_1_still_imports_build_dags() -> None:
    from smsc_hook import build_dags as current
    from smsc_hook.dag_factory import build_dags as old_path

    assert old_path is current is build_dags
