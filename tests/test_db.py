"""The warehouse URL from an Airflow ``postgres`` connection, built by the Postgres provider."""

from __future__ import annotations

import json

import pytest

from smsc_hook.client.exceptions import SmscConfigError
from smsc_hook.warehouse.engine import DRIVER, warehouse_url

BASE = {"conn_type": "postgres", "host": "db", "port": 5433, "schema": "smsc", "login": "u"}


def url_for(monkeypatch: pytest.MonkeyPatch, **fields: object) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_WH_TEST", json.dumps({**BASE, "password": "pw", **fields}))
    return warehouse_url("wh_test").render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("extra", "query"),
    [
        pytest.param({}, "", id="none"),
        pytest.param({"sslmode": "verify-full"}, "?sslmode=verify-full", id="libpq-sslmode"),
        pytest.param(
            {"sslmode": "require", "cursor": "dictcursor"}, "?sslmode=require", id="only-libpq"
        ),
        pytest.param(
            {"sqlalchemy_query": {"application_name": "bi"}, "application_name": "x"},
            "?application_name=bi",
            id="sqlalchemy_query-wins",
        ),
    ],
)
def test_url_comes_from_postgres_hook_with_libpq_extras(
    monkeypatch: pytest.MonkeyPatch, extra: dict, query: str
) -> None:
    assert url_for(monkeypatch, extra=extra) == f"{DRIVER}://u:pw@db:5433/smsc{query}"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"conn_type": "http"}, "needs 'postgres'", id="wrong-type"),
        pytest.param({"host": ""}, "no host", id="no-host"),
        pytest.param({"schema": ""}, "no database", id="no-database"),
    ],
)
def test_unusable_connection_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, fields: dict, message: str
) -> None:
    with pytest.raises(SmscConfigError, match=message):
        url_for(monkeypatch, **fields)


def test_missing_connection_names_the_fix() -> None:
    with pytest.raises(SmscConfigError, match="AIRFLOW_CONN_NOT_DEFINED_ANYWHERE"):
        warehouse_url("not_defined_anywhere")
