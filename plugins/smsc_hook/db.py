"""The warehouse engine from an Airflow ``postgres`` connection (or a plain URL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url

from smsc_hook.exceptions import SmscConfigError

DRIVER = "postgresql+psycopg2"
#: libpq options a connection's extras may carry through to psycopg2.
_LIBPQ_EXTRAS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "connect_timeout",
        "application_name",
        "options",
    }
)


def url_from_connection(
    host: str | None,
    port: int | None,
    schema: str | None,
    login: str | None,
    password: str | None,
    extra: dict[str, Any] | None = None,
) -> URL:
    """SQLAlchemy URL for an Airflow connection; ``schema`` is the database name there."""
    if not host:
        raise SmscConfigError("warehouse connection has no host")
    if not schema:
        raise SmscConfigError("warehouse connection has no database (the 'schema' field)")
    query = {k: str(v) for k, v in (extra or {}).items() if k in _LIBPQ_EXTRAS}
    return URL.create(
        DRIVER,
        username=login or None,
        password=password or None,
        host=host,
        port=port or None,
        database=schema,
        query=query,
    )


def warehouse_url(conn_id: str) -> URL:
    """Resolve the Airflow connection ``conn_id`` (conn_type ``postgres``) to a URL."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        # A config error: the retry policy fails at once instead of retrying 8 times.
        raise SmscConfigError(
            f"warehouse connection {conn_id!r} is not defined: add it (type postgres) "
            f"or set AIRFLOW_CONN_{conn_id.upper()}"
        ) from None
    if conn.conn_type not in {"postgres", "postgresql"}:
        raise SmscConfigError(
            f"connection {conn_id!r} has conn_type {conn.conn_type!r}; "
            "the warehouse needs 'postgres'"
        )
    return url_from_connection(
        conn.host, conn.port, conn.schema, conn.login, conn.password, conn.extra_dejson
    )


def make_engine(url: URL | str) -> Engine:
    """An engine for short task runs: pre-ping, small pool, the right driver."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername=DRIVER)
    return create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=0)
