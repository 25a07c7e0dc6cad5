"""The warehouse engine from an Airflow ``postgres`` connection, through the Postgres provider."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url

from smsc_hook.client.exceptions import SmscConfigError

DRIVER = "postgresql+psycopg2"
#: libpq options a connection's extras carry through to psycopg2. ``PostgresHook`` puts them
#: on the DB-API connections it opens itself, but not on its SQLAlchemy URL (which takes
#: only ``sqlalchemy_query``), so the engine would connect without ``sslmode`` & co.
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


def warehouse_url(conn_id: str) -> URL:
    """The URL for the Airflow connection ``conn_id`` (conn_type ``postgres``).

    Built by the Postgres provider's ``PostgresHook``: its database override, IAM/RDS
    tokens (extra ``iam``) and ``sqlalchemy_query`` apply as for any Postgres task; the
    libpq extras above are added to the query.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    hook = PostgresHook(postgres_conn_id=conn_id, sqlalchemy_scheme=DRIVER)
    try:
        conn = hook.connection
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
    if not conn.host:
        raise SmscConfigError("warehouse connection has no host")
    if not conn.schema:
        raise SmscConfigError("warehouse connection has no database (the 'schema' field)")
    url: URL = hook.sqlalchemy_url
    extra: dict[str, Any] = conn.extra_dejson
    libpq = {k: str(v) for k, v in extra.items() if k in _LIBPQ_EXTRAS and k not in url.query}
    return url.update_query_dict(libpq) if libpq else url


def make_engine(url: URL | str) -> Engine:
    """An engine for short task runs: pre-ping, small pool, the right driver."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername=DRIVER)
    return create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=0)
