"""PipelineSettings.from_env: defaults, accepted spellings, and errors that name the variable."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any

import pytest

from smsc_hook.airflow.settings import PipelineSettings
from smsc_hook.client.exceptions import SmscConfigError
from smsc_hook.warehouse.ledger import DEFAULT_LIMIT, DEFAULT_MARGIN, DEFAULT_WINDOW, RateLimit

TODAY = date(2026, 11, 10)


def from_env(**env: str) -> PipelineSettings:
    return PipelineSettings.from_env(env, today=TODAY)


def test_defaults_when_nothing_is_set() -> None:
    settings = from_env()
    assert settings == PipelineSettings()
    assert settings.timezone == "Europe/Moscow"
    assert settings.run_at == time(3, 0)
    assert settings.start_date == date(2026, 1, 1)
    assert settings.lookback_days == 3
    assert settings.catchup is False
    assert settings.smsc_conn_id == "smsc_default"
    assert settings.warehouse_conn_id == "smsc_warehouse"
    assert settings.pool == "smsc_api"
    assert settings.rate == RateLimit(DEFAULT_LIMIT, DEFAULT_WINDOW, DEFAULT_MARGIN)
    assert settings.rate == RateLimit(3, timedelta(seconds=60))


def test_reads_os_environ_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSC_TIMEZONE", "Asia/Tokyo")
    monkeypatch.setenv("SMSC_POOL", "smsc_api_tokyo")
    monkeypatch.delenv("SMSC_START_DATE", raising=False)
    settings = PipelineSettings.from_env(today=TODAY)
    assert settings.timezone == "Asia/Tokyo"
    assert settings.pool == "smsc_api_tokyo"


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        pytest.param({"SMSC_TIMEZONE": " Asia/Tokyo "}, "timezone", "Asia/Tokyo", id="tz-stripped"),
        pytest.param({"SMSC_TIMEZONE": "UTC"}, "timezone", "UTC", id="tz-utc"),
        pytest.param({"SMSC_SCHEDULE_TIME": "4:30"}, "run_at", time(4, 30), id="run-at"),
        pytest.param(
            {"SMSC_START_DATE": "2025-02-28"}, "start_date", date(2025, 2, 28), id="start"
        ),
        pytest.param({"SMSC_START_DATE": TODAY.isoformat()}, "start_date", TODAY, id="start-today"),
        pytest.param({"SMSC_LOOKBACK_DAYS": "0"}, "lookback_days", 0, id="lookback-0"),
        pytest.param({"SMSC_LOOKBACK_DAYS": "31"}, "lookback_days", 31, id="lookback-max"),
        pytest.param({"SMSC_CATCHUP": "true"}, "catchup", True, id="catchup-true"),
        pytest.param({"SMSC_CATCHUP": " YES "}, "catchup", True, id="catchup-yes"),
        pytest.param({"SMSC_CATCHUP": "1"}, "catchup", True, id="catchup-1"),
        pytest.param({"SMSC_CATCHUP": "off"}, "catchup", False, id="catchup-off"),
        pytest.param({"SMSC_CATCHUP": ""}, "catchup", False, id="catchup-empty"),
        pytest.param({"SMSC_CONN_ID": " smsc_prod "}, "smsc_conn_id", "smsc_prod", id="conn-id"),
        pytest.param({"SMSC_WAREHOUSE_CONN_ID": "dwh"}, "warehouse_conn_id", "dwh", id="wh-id"),
        pytest.param({"SMSC_POOL": "smsc_pool"}, "pool", "smsc_pool", id="pool"),
        pytest.param({"SMSC_RATE_LIMIT": "2"}, "rate_limit", 2, id="rate-limit"),
        pytest.param(
            {"SMSC_RATE_WINDOW_SECONDS": "1.5"}, "rate_window_seconds", 1.5, id="rate-window"
        ),
    ],
)
def test_accepted_values(env: dict[str, str], field: str, expected: Any) -> None:
    assert getattr(from_env(**env), field) == expected


def test_rate_combines_limit_and_window() -> None:
    settings = from_env(SMSC_RATE_LIMIT="2", SMSC_RATE_WINDOW_SECONDS="90")
    assert settings.rate.calls == 2
    assert settings.rate.window == timedelta(seconds=90)
    assert settings.rate.span == timedelta(seconds=91)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        pytest.param("SMSC_TIMEZONE", "Mars/Olympus", id="tz-unknown"),
        pytest.param("SMSC_TIMEZONE", "", id="tz-empty"),
        pytest.param("SMSC_START_DATE", "2026-13-01", id="start-bad-month"),
        pytest.param("SMSC_START_DATE", "01.01.2026", id="start-not-iso"),
        pytest.param("SMSC_START_DATE", "", id="start-empty"),
        pytest.param("SMSC_LOOKBACK_DAYS", "three", id="lookback-word"),
        pytest.param("SMSC_LOOKBACK_DAYS", "2.5", id="lookback-fraction"),
        pytest.param("SMSC_LOOKBACK_DAYS", "-1", id="lookback-negative"),
        pytest.param("SMSC_LOOKBACK_DAYS", "32", id="lookback-too-many"),
        pytest.param("SMSC_SCHEDULE_TIME", "25:00", id="run-at-hour"),
        pytest.param("SMSC_SCHEDULE_TIME", "3am", id="run-at-words"),
        pytest.param("SMSC_SCHEDULE_TIME", "03:00:00", id="run-at-seconds"),
        pytest.param("SMSC_CATCHUP", "maybe", id="catchup-maybe"),
        pytest.param("SMSC_CATCHUP", "2", id="catchup-2"),
        pytest.param("SMSC_CONN_ID", "", id="conn-empty"),
        pytest.param("SMSC_CONN_ID", "smsc default", id="conn-space"),
        pytest.param("SMSC_WAREHOUSE_CONN_ID", "   ", id="wh-blank"),
        pytest.param("SMSC_POOL", "", id="pool-empty"),
        pytest.param("SMSC_POOL", "smsc\tapi", id="pool-tab"),
        pytest.param("SMSC_RATE_LIMIT", "three", id="rate-word"),
        pytest.param("SMSC_RATE_LIMIT", "0", id="rate-zero"),
        pytest.param("SMSC_RATE_LIMIT", "-3", id="rate-negative"),
        pytest.param("SMSC_RATE_LIMIT", "2.5", id="rate-fraction"),
        pytest.param("SMSC_RATE_WINDOW_SECONDS", "a minute", id="window-words"),
        pytest.param("SMSC_RATE_WINDOW_SECONDS", "0", id="window-zero"),
        pytest.param("SMSC_RATE_WINDOW_SECONDS", "-60", id="window-negative"),
        pytest.param("SMSC_RATE_WINDOW_SECONDS", "nan", id="window-nan"),
        pytest.param("SMSC_RATE_WINDOW_SECONDS", "inf", id="window-inf"),
        pytest.param("SMSC_RATE_WINDOW_SECONDS", "1e20", id="window-huge"),
    ],
)
def test_bad_value_raises_config_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SmscConfigError) as raised:
        from_env(**{variable: value})
    assert variable in str(raised.value)


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(TODAY + timedelta(days=1), id="tomorrow"),
        pytest.param(date(2030, 1, 1), id="years-ahead"),
    ],
)
def test_future_start_date_is_refused(start: date) -> None:
    with pytest.raises(SmscConfigError, match=r"SMSC_START_DATE .* is in the future"):
        from_env(SMSC_START_DATE=start.isoformat())


def test_error_is_raised_before_later_variables_are_read() -> None:
    """The first bad variable is the one reported, so the import error points at it."""
    with pytest.raises(SmscConfigError, match="SMSC_TIMEZONE") as raised:
        from_env(SMSC_TIMEZONE="Nowhere/Land", SMSC_POOL="")
    assert "SMSC_POOL" not in str(raised.value)


def test_retry_waits_follow_the_configured_limits() -> None:
    settings = PipelineSettings.from_env(
        {
            "SMSC_RATE_WINDOW_SECONDS": "6",
            "SMSC_IP_BLOCK_PAUSE_SECONDS": "30",
            "SMSC_RETRY_BACKOFF_SECONDS": "2",
        }
    )
    assert settings.rate_limit_wait == timedelta(seconds=6) + DEFAULT_MARGIN + timedelta(seconds=4)
    assert settings.ip_block_pause == timedelta(seconds=30)
    assert settings.retry_backoff == timedelta(seconds=2)
    assert PipelineSettings().rate_limit_wait == timedelta(seconds=65)


@pytest.mark.parametrize("variable", ["SMSC_IP_BLOCK_PAUSE_SECONDS", "SMSC_RETRY_BACKOFF_SECONDS"])
@pytest.mark.parametrize("value", ["0", "-5", "x", "100000"])
def test_bad_retry_waits_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SmscConfigError, match=variable):
        PipelineSettings.from_env({variable: value})
