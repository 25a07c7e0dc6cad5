"""How fast the SMSC page is on a warehouse holding a year of one account (not a test).

``python -m devtools.page_measure``: a throwaway database on the discovered PostgreSQL gets
365 days of 12 logins, each day loaded as production would (a backfill, then three lookback
re-fetches, some of which change figures), a ledger row per call, a reconciliation per month
and a few gaps. Then the real page app (its SQL, its rendering) answers ``GET /`` and the JSON
endpoints repeatedly; Airflow's auth and metadata are left out (they add the api-server's
token check and 5 small metadata queries). Prints the query count and the times.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import create_engine, text

from devtools import postgres
from devtools.airflow_stack import postgres_connection

LOGINS = [f"sub{i:02d}" for i in range(11)]
DAYS = 365
#: The year up to yesterday: smsc.load_gaps runs to the database's yesterday.
START = date.today() - timedelta(days=DAYS)  # noqa: DTZ011 (a script, measured today)
GAPS = {START + timedelta(days=n) for n in (40, 41, 42, 200)}


def fill(url: str) -> None:
    from smsc_hook.checks.reconciliation import check_month, stored_totals
    from smsc_hook.client.models import StatRow
    from smsc_hook.warehouse.migrations import apply_migrations
    from smsc_hook.warehouse.writer import Warehouse

    apply_migrations(url)
    engine = create_engine(url)
    warehouse = Warehouse(engine)
    days = [START + timedelta(days=n) for n in range(DAYS) if START + timedelta(days=n) not in GAPS]

    def rows(day: date, bump: int) -> list[StatRow]:
        base = day.toordinal()
        return [
            StatRow(
                login,
                (base * (i + 3)) % 500 + bump,
                Decimal((base * (i + 7)) % 9000) / 100,
                Decimal(0),
                "RUB",
            )
            for i, login in enumerate(["demo", *LOGINS])
        ]

    for n, day in enumerate(days):
        # The backfill's load, then the lookback's three re-fetches; every 9th day changes.
        for attempt in range(4):
            bump = 1 if attempt == 3 and n % 9 == 0 else 0
            warehouse.load_day(
                account="demo",
                series="main",
                day=day,
                rows=rows(day, bump),
                raw_reply=json.dumps([str(day), attempt]).encode(),
                reply_format=3,
            )
    with engine.begin() as conn:
        # One ledger row per load above, spread over the year as scheduled runs make them.
        conn.execute(
            text(
                """
                INSERT INTO smsc.api_calls (account, reserved_at, window_start, window_end, host,
                    caller, waited_ms, finished_at, outcome, latency_ms)
                SELECT 'demo', d + interval '3 hours' + a * interval '21 seconds', d::date - a,
                       d::date - a, 'https://smsc.ru',
                       'smsc_daily_stats/scheduled__' || to_char(d, 'YYYY-MM-DD')
                           || '/load_day[' || a || ']#1',
                       CASE WHEN a > 0 THEN 20000 ELSE 0 END,
                       d + interval '3 hours' + a * interval '21 seconds' + interval '400 ms',
                       'ok', 400
                FROM generate_series(:first, :last, interval '1 day') AS d,
                     generate_series(0, 3) AS a
                """
            ),
            {"first": START + timedelta(days=1), "last": START + timedelta(days=DAYS - 1)},
        )
    month = START

    def as_smsc(first: date, _last: date) -> list[StatRow]:
        """SMSC's month total: what is stored (the months match)."""
        totals = stored_totals(engine, "demo", "main", first)
        return [StatRow(login, t.cnt, t.credit, t.debit, "RUB") for login, t in totals.items()]

    while month < START + timedelta(days=DAYS - 31):
        check_month(
            engine=engine,
            account="demo",
            series="main",
            month=month,
            fetch_month=as_smsc,
            today=START + timedelta(days=DAYS),
        )
        month = (month + timedelta(days=32)).replace(day=1)
    engine.dispose()


def measure(url: str, repeat: int) -> dict[str, object]:
    from fastapi.testclient import TestClient

    from smsc_hook.airflow.settings import PipelineSettings
    from smsc_hook.ui import app as page_app
    from smsc_hook.ui.metadata import AirflowMetadata, MetadataSnapshot, PoolState

    os.environ["AIRFLOW_CONN_SMSC_WAREHOUSE"] = json.dumps(postgres_connection(url))
    os.environ["AIRFLOW_CONN_SMSC_DEFAULT"] = json.dumps(
        {"conn_type": "smsc", "host": "smsc.ru", "login": "demo", "password": "unused"}
    )
    settings = PipelineSettings.from_env()
    access = page_app.Access(settings, list(settings.all_accounts()))
    meta = MetadataSnapshot(True, [], {"smsc_api": PoolState("smsc_api", True, 1)})

    class Fixed(AirflowMetadata):
        def read(self, *args: object, **kwargs: object) -> MetadataSnapshot:
            return meta

    app = page_app.create_app()
    app.dependency_overrides[page_app.page_access] = lambda: access
    app.dependency_overrides[page_app.api_access] = lambda: access
    app.dependency_overrides[page_app.metadata_reader] = Fixed
    client = TestClient(app)
    results: dict[str, object] = {}
    for path in ("/", "/api/now", "/api/calls", "/api/data"):
        client.get(path)  # warm: the engine's first connection
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - began) * 1000)
            response.raise_for_status()
        if path == "/":
            body = response.text
            queries = int(body.split('id="query-count">')[1].split("<")[0])
            size = len(body.encode())
        else:
            queries = response.json()["warehouse_queries"]
            size = len(response.content)
        results[path] = {
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
            "warehouse_queries": queries,
            "bytes": size,
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.page_measure", description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with postgres.throwaway_database(postgres.server_url(), prefix="smsc_page") as url:
        began = time.monotonic()
        fill(url)
        engine = create_engine(url)
        with engine.connect() as conn:
            counts = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM smsc.stat_day), (SELECT count(*) FROM"
                    " smsc.load_log), (SELECT count(*) FROM smsc.api_calls), (SELECT count(*)"
                    " FROM smsc.stat_revision), (SELECT count(*) FROM smsc.reconciliation_check)"
                )
            ).one()
        engine.dispose()
        print(
            f"filled in {time.monotonic() - began:.0f} s: {counts[0]} stat_day rows,"
            f" {counts[1]} loads, {counts[2]} ledger rows, {counts[3]} revisions,"
            f" {counts[4]} month checks; measured at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        )
        for path, figures in measure(url, args.repeat).items():
            print(f"GET {path:<11} {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
