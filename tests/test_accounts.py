"""Several SMSC accounts: SMSC_ACCOUNTS parsing, one DAG and pool each, per-account plans."""

from __future__ import annotations

import json
import os
import runpy
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from smsc_hook.airflow.planning import (
    check_bootstrapped,
    plan_lookback,
    plan_reconciliations,
    plan_refetches,
    run_series,
)
from smsc_hook.airflow.settings import AccountConfig, PipelineSettings, parse_accounts
from smsc_hook.client.exceptions import SmscConfigError

TODAY = date(2026, 11, 10)
DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "smsc_daily_stats.py"
SHOP_AND_NEWS = (
    '[{"name": "shop", "conn_id": "smsc_shop"},'
    ' {"name": "news", "conn_id": "smsc_news", "balance2": true}]'
)


def from_env(**env: str) -> PipelineSettings:
    return PipelineSettings.from_env(env, today=TODAY)


# --- SMSC_ACCOUNTS -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {"SMSC_ACCOUNTS": '[{"name": "shop", "conn_id": "smsc_shop"}]'},
            [AccountConfig("shop", "smsc_shop", False, "smsc_api_shop")],
            id="one-account",
        ),
        pytest.param(
            {"SMSC_ACCOUNTS": '[{"name": "shop"}]'},
            [AccountConfig("shop", "smsc_shop", False, "smsc_api_shop")],
            id="default-conn-id-and-pool",
        ),
        pytest.param(
            {"SMSC_ACCOUNTS": SHOP_AND_NEWS},
            [
                AccountConfig("shop", "smsc_shop", False, "smsc_api_shop"),
                AccountConfig("news", "smsc_news", True, "smsc_api_news"),
            ],
            id="two-accounts-one-with-balance2",
        ),
        pytest.param(
            {"SMSC_ACCOUNTS": '[{"name": "eu_2", "conn_id": "smsc-eu", "pool": " api_eu "}]'},
            [AccountConfig("eu_2", "smsc-eu", False, "api_eu")],
            id="explicit-pool-stripped",
        ),
        pytest.param(
            {"SMSC_ACCOUNTS": '[{"name": "shop", "balance2": false}]', "SMSC_POOL": "sms"},
            [AccountConfig("shop", "smsc_shop", False, "sms_shop")],
            id="default-pool-follows-SMSC_POOL",
        ),
        pytest.param(
            {"SMSC_ACCOUNTS": '  [{"name": "1st"}]\n'},
            [AccountConfig("1st", "smsc_1st", False, "smsc_api_1st")],
            id="digit-first-name-and-whitespace",
        ),
        pytest.param({"SMSC_ACCOUNTS": "  "}, [], id="blank-means-unset"),
    ],
)
def test_accounts_accepted(env: dict[str, str], expected: list[AccountConfig]) -> None:
    assert list(from_env(**env).accounts) == expected


def test_parse_accounts_uses_the_given_default_pool() -> None:
    assert parse_accounts('[{"name": "shop"}, {"name": "news"}]', "pool") == (
        AccountConfig("shop", "smsc_shop", False, "pool_shop"),
        AccountConfig("news", "smsc_news", False, "pool_news"),
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("shop,news", "not JSON", id="not-json"),
        pytest.param('[{"name": "shop",}]', "not JSON", id="trailing-comma"),
        pytest.param("[]", "expected a non-empty JSON list", id="empty-list"),
        pytest.param('{"name": "shop"}', "expected a non-empty JSON list", id="object-not-list"),
        pytest.param('"shop"', "expected a non-empty JSON list", id="string-not-list"),
        pytest.param('["shop"]', "item 0: expected an object", id="item-not-object"),
        pytest.param('[{"conn_id": "smsc_shop"}]', "item 0: name must match", id="missing-name"),
        pytest.param('[{"name": "Shop"}]', "item 0: name must match", id="uppercase-name"),
        pytest.param('[{"name": "_shop"}]', "item 0: name must match", id="underscore-first"),
        pytest.param('[{"name": "my-shop"}]', "item 0: name must match", id="dash-in-name"),
        pytest.param('[{"name": ""}]', "item 0: name must match", id="empty-name"),
        pytest.param(json.dumps([{"name": "a" * 41}]), "name must match", id="name-too-long"),
        pytest.param('[{"name": 7}]', "item 0: name must match", id="name-not-string"),
        pytest.param(
            '[{"name": "shop"}, {"name": "news"}, {"name": "shop", "conn_id": "smsc_other"}]',
            "two accounts share a name",
            id="duplicate-names",
        ),
        pytest.param(
            '[{"name": "shop", "pool": "smsc_api"}, {"name": "news", "pool": "smsc_api"}]',
            "two accounts share a pool",
            id="duplicate-pools",
        ),
        pytest.param(
            '[{"name": "shop", "pool": "smsc_api_news"}, {"name": "news"}]',
            "two accounts share a pool",
            id="explicit-pool-equals-a-default-one",
        ),
        pytest.param(
            '[{"name": "shop", "conn_id": "smsc"}, {"name": "news", "conn_id": "smsc"}]',
            "two accounts share a conn_id",
            id="duplicate-conn-ids",
        ),
        pytest.param(
            '[{"name": "shop", "login": "shop"}]', "item 0: expected an object", id="unknown-key"
        ),
        pytest.param(
            '[{"name": "shop"}, {"name": "news", "Balance2": true}]',
            "item 1: expected an object",
            id="misspelt-key",
        ),
        pytest.param(
            '[{"name": "shop", "conn_id": 5}]', "item 0: conn_id must be a string", id="conn-id-int"
        ),
        pytest.param(
            '[{"name": "shop", "conn_id": ""}]', "item 0: conn_id must be", id="conn-id-empty"
        ),
        pytest.param(
            '[{"name": "shop", "conn_id": "smsc shop"}]',
            "expected a non-empty id",
            id="conn-id-space",
        ),
        pytest.param(
            '[{"name": "shop", "balance2": "yes"}]', "balance2 true/false", id="balance2-string"
        ),
        pytest.param('[{"name": "shop", "balance2": 1}]', "balance2 true/false", id="balance2-1"),
        pytest.param('[{"name": "shop", "pool": 7}]', "pool must be a string", id="pool-int"),
        pytest.param('[{"name": "shop", "pool": ""}]', "expected a non-empty id", id="pool-empty"),
        pytest.param(
            '[{"name": "shop", "pool": "smsc api"}]', "expected a non-empty id", id="pool-space"
        ),
    ],
)
def test_bad_accounts_fail_naming_smsc_accounts(value: str, reason: str) -> None:
    with pytest.raises(SmscConfigError) as caught:
        from_env(SMSC_ACCOUNTS=value)
    message = str(caught.value)
    assert message.startswith(f"SMSC_ACCOUNTS={value!r} is invalid: ")
    assert reason in message


def test_name_error_states_the_rule_that_is_applied() -> None:
    with pytest.raises(SmscConfigError) as caught:
        from_env(SMSC_ACCOUNTS='[{"name": "_shop"}]')
    assert "[a-z0-9][a-z0-9_]{0,39}" in str(caught.value)


# --- the default account and lookups ---------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, AccountConfig("", "smsc_default", False, "smsc_api"), id="unset"),
        pytest.param(
            {"SMSC_CONN_ID": "smsc_prod", "SMSC_POOL": "api"},
            AccountConfig("", "smsc_prod", False, "api"),
            id="from-SMSC_CONN_ID-and-SMSC_POOL",
        ),
    ],
)
def test_without_smsc_accounts_there_is_one_unnamed_account(
    env: dict[str, str], expected: AccountConfig
) -> None:
    settings = from_env(**env)
    assert settings.accounts == ()
    assert settings.all_accounts() == (expected,)
    assert settings.account("") == expected
    assert expected.dag_id == "smsc_daily_stats"
    assert expected.series == ("main",)


@pytest.mark.parametrize(
    ("account", "dag_id", "series"),
    [
        pytest.param(AccountConfig(), "smsc_daily_stats", ("main",), id="unnamed"),
        pytest.param(AccountConfig("shop"), "smsc_daily_stats_shop", ("main",), id="named"),
        pytest.param(
            AccountConfig("news", balance2=True),
            "smsc_daily_stats_news",
            ("main", "balance2"),
            id="named-balance2",
        ),
    ],
)
def test_account_dag_id_and_series(account: AccountConfig, dag_id: str, series: tuple) -> None:
    assert account.dag_id == dag_id
    assert account.series == series


def test_account_lookup_by_name() -> None:
    settings = from_env(SMSC_ACCOUNTS=SHOP_AND_NEWS)
    assert [a.name for a in settings.all_accounts()] == ["shop", "news"]
    assert settings.account("news").conn_id == "smsc_news"
    with pytest.raises(SmscConfigError, match=r"no account named 'nwes' .*'shop', 'news'"):
        settings.account("nwes")
    with pytest.raises(SmscConfigError, match=r"no account named ''"):
        settings.account("")


# --- the DAG file and the plans --------------------------------------------------------------


@pytest.fixture
def clean_smsc_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No SMSC_* setting or bootstrap Variable from the surrounding environment."""
    for name in list(os.environ):
        if name.startswith("SMSC_") or name == "AIRFLOW_VAR_SMSC_BOOTSTRAP":
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("accounts", "expected"),
    [
        pytest.param(None, {"smsc_daily_stats": ("smsc_default", "smsc_api")}, id="unset-one-dag"),
        pytest.param(
            SHOP_AND_NEWS,
            {
                "smsc_daily_stats_shop": ("smsc_shop", "smsc_api_shop"),
                "smsc_daily_stats_news": ("smsc_news", "smsc_api_news"),
            },
            id="two-accounts-two-dags",
        ),
    ],
)
def test_dag_file_declares_one_dag_per_account_with_its_pool(
    clean_smsc_env: pytest.MonkeyPatch,
    accounts: str | None,
    expected: dict[str, tuple[str, str]],
) -> None:
    if accounts is not None:
        clean_smsc_env.setenv("SMSC_ACCOUNTS", accounts)

    namespace = runpy.run_path(str(DAG_FILE))

    dags = {name: obj for name, obj in namespace.items() if name.startswith("smsc_daily_stats")}
    assert sorted(dags) == sorted(expected)
    for name, (conn_id, pool) in expected.items():
        dag = dags[name]
        assert dag.dag_id == name
        for task_id in ("load_day", "reconcile_month", "refetch_day"):
            kwargs = dag.task_dict[task_id].partial_kwargs
            assert (kwargs["smsc_conn_id"], kwargs["pool"]) == (conn_id, pool), task_id
    if accounts is not None:
        assert "account:news" in dags["smsc_daily_stats_news"].tags


@pytest.mark.parametrize(
    ("context_dag_id", "expected"),
    [
        pytest.param("smsc_daily_stats_news", ["smsc_daily_stats_news"], id="its-own-dag"),
        pytest.param(
            "other_dag", ["smsc_daily_stats_news", "smsc_daily_stats_shop"], id="not-ours"
        ),
    ],
)
def test_a_task_process_builds_only_the_dag_its_parsing_context_names(
    clean_smsc_env: pytest.MonkeyPatch, context_dag_id: str, expected: list[str]
) -> None:
    """Airflow sets the parsing context in a task's process: its DAG is the one needed."""
    clean_smsc_env.setenv("SMSC_ACCOUNTS", SHOP_AND_NEWS)
    clean_smsc_env.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", context_dag_id)

    namespace = runpy.run_path(str(DAG_FILE))

    assert sorted(name for name in namespace if name.startswith("smsc_daily_stats")) == expected


def test_a_bad_account_still_fails_the_parse_of_one_dag(
    clean_smsc_env: pytest.MonkeyPatch,
) -> None:
    clean_smsc_env.setenv("SMSC_ACCOUNTS", '[{"name": "shop"}, {"name": "Bad Name"}]')
    clean_smsc_env.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "smsc_daily_stats_shop")
    with pytest.raises(SmscConfigError, match="SMSC_ACCOUNTS"):
        runpy.run_path(str(DAG_FILE))


def context(day: date, run_type: str = "scheduled") -> dict[str, Any]:
    """The two context entries planning reads: the data interval and the run's type."""
    start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo("Europe/Moscow"))
    return {"data_interval_start": start, "dag_run": SimpleNamespace(run_type=run_type)}


def bootstrapped(monkeypatch: pytest.MonkeyPatch, *pools: str) -> PipelineSettings:
    """Settings for shop and news, with the bootstrap's record listing ``pools``."""
    monkeypatch.setenv("AIRFLOW_VAR_SMSC_BOOTSTRAP", json.dumps({"pools": list(pools)}))
    return from_env(SMSC_ACCOUNTS=SHOP_AND_NEWS)


@pytest.mark.parametrize(
    ("name", "run_type", "expected"),
    [
        pytest.param(
            "news",
            "scheduled",
            [
                (day, series)
                for day in ("2026-11-06", "2026-11-07", "2026-11-08", "2026-11-09")
                for series in ("main", "balance2")
            ],
            id="news-scheduled-main-and-balance2-per-day",
        ),
        pytest.param(
            "news",
            "backfill",
            [("2026-11-09", "main"), ("2026-11-09", "balance2")],
            id="news-backfill-its-day-only",
        ),
        pytest.param(
            "shop",
            "scheduled",
            [(day, "main") for day in ("2026-11-06", "2026-11-07", "2026-11-08", "2026-11-09")],
            id="shop-main-only",
        ),
    ],
)
def test_loads_per_account(
    clean_smsc_env: pytest.MonkeyPatch, name: str, run_type: str, expected: list[tuple[str, str]]
) -> None:
    settings = bootstrapped(clean_smsc_env, "smsc_api_shop", "smsc_api_news")

    account = settings.account(name)
    lookback = plan_lookback(context(date(2026, 11, 9), run_type), settings, account)

    # The run's own day is load_day's (one per series, no planning); the rest is the plan.
    own = [{"balance2": series == "balance2"} for day, series in expected if day == "2026-11-09"]
    assert run_series(account) == own
    assert lookback == [
        {"day": day, "balance2": series == "balance2"}
        for day, series in expected
        if day != "2026-11-09"
    ]


def test_plan_reconciliations_covers_both_series_of_a_balance2_account(
    clean_smsc_env: pytest.MonkeyPatch,
) -> None:
    settings = bootstrapped(clean_smsc_env, "smsc_api_news")
    news = settings.account("news")

    assert plan_reconciliations(context(date(2026, 10, 31)), settings, news) == [
        {"month": "2026-10", "balance2": False},
        {"month": "2026-10", "balance2": True},
    ]
    assert plan_reconciliations(context(date(2026, 10, 31), "manual"), settings, news) == []


@pytest.mark.parametrize(
    "pools",
    [
        pytest.param(None, id="never-bootstrapped"),
        pytest.param(["smsc_api_news"], id="bootstrapped-for-another-account"),
        pytest.param(["smsc_api"], id="bootstrapped-single-account-only"),
    ],
)
def test_the_pool_check_refuses_a_pool_the_bootstrap_did_not_create(
    clean_smsc_env: pytest.MonkeyPatch, pools: list[str] | None
) -> None:
    settings = (
        from_env(SMSC_ACCOUNTS=SHOP_AND_NEWS)
        if pools is None
        else bootstrapped(clean_smsc_env, *pools)
    )

    with pytest.raises(SmscConfigError) as caught:
        check_bootstrapped(settings.account("shop").pool)

    message = str(caught.value)
    assert "pool 'smsc_api_shop' is not set up" in message
    assert "python -m smsc_hook.bootstrap" in message


def month_check(status: str, balance2: bool = False, days: int = 0) -> dict[str, Any]:
    """A reconcile_month result as the DAG passes it on (XCom)."""
    return {
        "account": "demo",
        "series": "balance2" if balance2 else "main",
        "month": "2026-02",
        "balance2": balance2,
        "check_id": 1,
        "status": status,
        "refetch": [f"2026-02-{d:02d}" for d in range(1, days + 1)],
    }


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        pytest.param([], [], id="no-month-closed"),
        pytest.param([month_check("matched")], [], id="matched"),
        pytest.param([month_check("incomplete")], [], id="incomplete-costs-nothing"),
        pytest.param(
            [month_check("differs", days=2)],
            [{"day": "2026-02-01", "balance2": False}, {"day": "2026-02-02", "balance2": False}],
            id="differs-refetches-every-day",
        ),
        pytest.param(
            [month_check("matched"), month_check("differs", balance2=True, days=1)],
            [{"day": "2026-02-01", "balance2": True}],
            id="only-the-series-that-differs",
        ),
    ],
)
def test_plan_refetches(checks: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert plan_refetches(checks) == expected
