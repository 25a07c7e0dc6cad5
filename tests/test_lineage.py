"""OpenLineage facets of one load, read from the operator, and the Asset's URI.

The operator runs for real (simulator over HTTP, throwaway warehouse); the facets name the
simulator's endpoint and the warehouse's real host, port, database and tables. The
OpenLineage listener's events under a scheduler are checked in test_alert_stack.
"""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine

from devtools.airflow_stack import postgres_connection
from devtools.simulator_process import RunningSimulator
from smsc_hook.airflow.dag_factory import build_dags
from smsc_hook.airflow.operators import SmscStatsToPostgresOperator
from smsc_hook.airflow.settings import PipelineSettings
from smsc_hook.alerts.config import AlertSettings
from smsc_hook.observability.lineage import (
    FALLBACK_ASSET_URI,
    daily_stats_uri,
    endpoint_namespace,
)
from tests.support import ACCOUNT, PASSWORD, query

pytestmark = pytest.mark.timeout(120)
DAY = date(2026, 11, 2)


def test_the_facets_of_one_load_name_the_real_host_and_tables(
    fast_simulator: RunningSimulator,
    engine: Engine,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    smsc = {"conn_type": "smsc", "host": fast_simulator.url, "login": ACCOUNT, "password": PASSWORD}
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_DEFAULT", json.dumps(smsc))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMSC_WAREHOUSE", json.dumps(postgres_connection(warehouse_url))
    )
    operator = SmscStatsToPostgresOperator(task_id="load_day", day=DAY.isoformat())
    assert operator.get_openlineage_facets_on_complete(None) is None  # nothing read yet
    ti = SimpleNamespace(
        dag_id="smsc_daily_stats", run_id="manual__lineage", task_id="load_day", map_index=-1,
        try_number=1,
    )  # fmt: skip

    result = operator.execute({"ti": ti})  # type: ignore[arg-type]
    lineage = operator.get_openlineage_facets_on_complete(None)

    (source,) = lineage.inputs
    assert (source.namespace, source.name) == (fast_simulator.url, ACCOUNT)
    assert source.inputFacets["inputStatistics"].rowCount == result["rows"]
    host, port, database = engine.url.host, engine.url.port or 5432, engine.url.database
    assert {out.namespace for out in lineage.outputs} == {f"postgres://{host}:{port}"}
    counts = {out.name: out.outputFacets["outputStatistics"].rowCount for out in lineage.outputs}
    stored = query(warehouse_url, "SELECT count(*) FROM smsc.stat_day WHERE stat_date = :d", d=DAY)[
        0
    ][0]
    assert counts == {
        f"{database}.smsc.stat_day": stored,
        f"{database}.smsc.load_log": 1,
        f"{database}.smsc.raw_reply": 1,
    }
    assert stored == result["rows"] > 0
    assert PASSWORD not in repr(lineage)


@pytest.mark.parametrize(
    ("base_url", "namespace"),
    [
        pytest.param("https://smsc.ru/", "https://smsc.ru", id="host"),
        pytest.param("http://127.0.0.1:8765/sys", "http://127.0.0.1:8765", id="port-path"),
        pytest.param("https://user:pw@smsc.kz", "https://smsc.kz", id="no-credentials"),
    ],
)
def test_the_endpoint_namespace_is_scheme_host_and_port(base_url: str, namespace: str) -> None:
    assert endpoint_namespace(base_url) == namespace


@pytest.mark.parametrize(
    ("env", "uri"),
    [
        pytest.param(
            {"AIRFLOW_CONN_SMSC_WAREHOUSE": json.dumps(
                {"conn_type": "postgres", "host": "db.corp", "port": 6432, "schema": "smsc"}
            )},
            "postgres://db.corp:6432/smsc/smsc/daily_stats",
            id="json-connection",
        ),
        pytest.param(
            {"AIRFLOW_CONN_SMSC_WAREHOUSE": "postgres://u:secret@db.corp/warehouse"},
            "postgres://db.corp:5432/warehouse/smsc/daily_stats",
            id="uri-connection",
        ),
        pytest.param(
            {"SMSC_ASSET_URI": "postgres://bi-db:5432/dwh/smsc/daily_stats"},
            "postgres://bi-db:5432/dwh/smsc/daily_stats",
            id="override",
        ),
        pytest.param({}, FALLBACK_ASSET_URI, id="secrets-backend-fallback"),
    ],
)  # fmt: skip
def test_the_asset_uri_comes_from_the_warehouse_connection(env: dict[str, str], uri: str) -> None:
    assert daily_stats_uri("smsc_warehouse", env) == uri
    assert "secret" not in daily_stats_uri("smsc_warehouse", env)


def test_the_dag_publishes_the_asset_of_the_real_warehouse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMSC_WAREHOUSE",
        json.dumps({"conn_type": "postgres", "host": "db.corp", "port": 5432, "schema": "smsc"}),
    )
    settings = PipelineSettings.from_env({"SMSC_START_DATE": "2026-01-01"})
    dag = build_dags(settings, AlertSettings())["smsc_daily_stats"]
    (asset,) = dag.task_dict["publish"].outlets
    assert (asset.name, asset.uri) == (
        "smsc.daily_stats",
        "postgres://db.corp:5432/smsc/smsc/daily_stats",
    )
