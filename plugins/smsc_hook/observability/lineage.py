"""OpenLineage datasets of a load, and the warehouse Asset's URI, from the real hosts.

OpenLineage is an optional extra (``smsc-airflow-provider[openlineage]``): its modules are
imported only when its listener asks an operator for facets, so without it nothing here
costs anything. Dataset naming follows OpenLineage's spec: PostgreSQL tables live in the
namespace ``postgres://HOST:PORT`` and are named ``DATABASE.SCHEMA.TABLE``; the SMSC
endpoint is the namespace of its base URL, the dataset named by the account.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url

#: What the schema's tables are called in lineage.
SCHEMA = "smsc"
DEFAULT_PORT = 5432
#: Overrides the Asset's URI when the warehouse connection lives in a secrets backend (the
#: DAG file reads no connection at parse time, only ``AIRFLOW_CONN_*`` variables).
ASSET_URI_VARIABLE = "SMSC_ASSET_URI"
#: The URI used before 0.2, when neither the connection variable nor the override is set.
FALLBACK_ASSET_URI = "postgres://smsc-warehouse/smsc/smsc/daily_stats"


@dataclass(frozen=True)
class WarehouseLocation:
    """Where the warehouse tables are: host, port and database of the real connection."""

    host: str
    port: int
    database: str

    @classmethod
    def from_url(cls, url: str | URL) -> WarehouseLocation:
        parsed = make_url(url) if isinstance(url, str) else url
        return cls(parsed.host or "localhost", parsed.port or DEFAULT_PORT, parsed.database or "")

    @property
    def namespace(self) -> str:
        return f"postgres://{self.host}:{self.port}"

    def table(self, name: str) -> str:
        return f"{self.database}.{SCHEMA}.{name}"


@dataclass
class LoadLineage:
    """What one task read and wrote, gathered while it ran (row counts per output table)."""

    endpoint: str
    account: str
    warehouse: WarehouseLocation
    input_rows: int | None = None
    outputs: dict[str, int] = field(default_factory=dict)


def endpoint_namespace(base_url: str) -> str:
    """``scheme://host[:port]`` of the SMSC base URL (no path, never credentials)."""
    parts = urlsplit(base_url if "://" in base_url else f"https://{base_url}")
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def operator_lineage(lineage: LoadLineage) -> Any:
    """The ``OperatorLineage`` for the OpenLineage listener (imports OpenLineage here)."""
    from airflow.providers.common.compat.openlineage.facet import (
        InputDataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    input_facets: dict[str, Any] = {}
    if lineage.input_rows is not None:
        try:
            from openlineage.client.generated.input_statistics_input_dataset import (
                InputStatisticsInputDatasetFacet,
            )
        except ImportError:  # an older client without the facet
            pass
        else:
            input_facets["inputStatistics"] = InputStatisticsInputDatasetFacet(
                rowCount=lineage.input_rows
            )
    return OperatorLineage(
        inputs=[
            InputDataset(
                namespace=endpoint_namespace(lineage.endpoint),
                name=lineage.account,
                inputFacets=input_facets,
            )
        ],
        outputs=[
            OutputDataset(
                namespace=lineage.warehouse.namespace,
                name=lineage.warehouse.table(table),
                outputFacets={
                    "outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=rows)
                },
            )
            for table, rows in lineage.outputs.items()
        ],
    )


def _connection_from_env(conn_id: str, environ: Mapping[str, str]) -> WarehouseLocation | None:
    """The warehouse from ``AIRFLOW_CONN_<ID>`` (JSON or URI), without any lookup."""
    raw = environ.get(f"AIRFLOW_CONN_{conn_id.upper()}", "").strip()
    if not raw:
        return None
    try:
        if raw.startswith("{"):
            conn = json.loads(raw)
            host, port, database = conn.get("host"), conn.get("port"), conn.get("schema")
        else:
            parts = urlsplit(raw)
            host, port, database = parts.hostname, parts.port, parts.path.lstrip("/")
        if not host:
            return None
        return WarehouseLocation(str(host), int(port or DEFAULT_PORT), str(database or ""))
    except (ValueError, TypeError, AttributeError):
        return None


def daily_stats_uri(conn_id: str, environ: Mapping[str, str] | None = None) -> str:
    """The Asset URI of ``smsc.daily_stats``: ``postgres://HOST:PORT/DATABASE/smsc/daily_stats``.

    From ``SMSC_ASSET_URI`` if set, else the warehouse connection's ``AIRFLOW_CONN_*``
    variable (read, not looked up: parsing does no I/O), else the pre-0.2 generic URI.
    """
    environ = os.environ if environ is None else environ
    override = environ.get(ASSET_URI_VARIABLE, "").strip()
    if override:
        return override
    found = _connection_from_env(conn_id, environ)
    if found is None or not found.database:
        return FALLBACK_ASSET_URI
    return f"postgres://{found.host}:{found.port}/{found.database}/{SCHEMA}/daily_stats"
