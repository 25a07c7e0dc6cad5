"""``python -m smsc_hook.bootstrap``: make a deployment ready, idempotently, saying what it did.

1. the pool (1 slot) every SMSC call of an account runs in — a task in a missing pool would sit
   ``scheduled`` forever with only a scheduler warning;
2. the warehouse migrations;
3. the SMSC connection: parsed, then (unless ``--no-api-call``) one paced call for
   yesterday, which proves host, credentials and IP;
4. the ``smsc_bootstrap`` Variable the DAG checks before it queues API tasks.

Runs where the Airflow CLI runs (it needs the metadata database).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from airflow.sdk.exceptions import AirflowNotFoundException

from smsc_hook.airflow.settings import BOOTSTRAP_VARIABLE, AccountConfig, PipelineSettings
from smsc_hook.client.exceptions import SmscError


def ensure_pool(name: str, slots: int = 1) -> str:
    """Create or resize the pool; return what happened, for the printout."""
    from airflow.models import Pool

    existing = Pool.get_pool(name)
    if existing is not None and existing.slots == slots:
        return f"pool {name!r}: present ({slots} slot)"
    Pool.create_or_update_pool(
        name,
        slots=slots,
        description=(
            "SMSC get_stat calls, one at a time (see smsc_hook.warehouse.ledger for the rate)"
        ),
        include_deferred=False,
    )
    if existing is None:
        return f"pool {name!r}: created ({slots} slot)"
    return f"pool {name!r}: resized from {existing.slots} to {slots} slot"


def migrate_warehouse(conn_id: str) -> str:
    from smsc_hook.warehouse.engine import make_engine, warehouse_url
    from smsc_hook.warehouse.migrations import apply_migrations

    engine = make_engine(warehouse_url(conn_id))
    try:
        applied = apply_migrations(engine)
    finally:
        engine.dispose()
    where = f"{engine.url.host}:{engine.url.port or 5432}/{engine.url.database}"
    if applied:
        return f"warehouse {where}: applied {', '.join(applied)}"
    return f"warehouse {where}: schema up to date"


def check_smsc(settings: PipelineSettings, account: AccountConfig, call_api: bool) -> str:
    from smsc_hook.client.hook import SmscHook
    from smsc_hook.probe import describe_shape
    from smsc_hook.warehouse.engine import make_engine, warehouse_url
    from smsc_hook.warehouse.ledger import LedgerPacer

    hook = SmscHook(account.conn_id)
    smsc = hook.settings
    if not call_api:
        return f"SMSC connection {account.conn_id!r}: {smsc!r} (no API call made)"
    engine = make_engine(warehouse_url(settings.warehouse_conn_id))
    try:
        hook.pacer = LedgerPacer(
            engine,
            smsc.account,
            limit=settings.rate,
            caller="bootstrap",
            ip_block_pause=settings.ip_block_pause,
        )
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        reply = hook.fetch_stat(yesterday, yesterday)
    finally:
        engine.dispose()
    # The same masked summary as `python -m smsc_hook.probe`: which layout SMSC answers.
    return (
        f"SMSC connection {account.conn_id!r}: {smsc.base_urls[0]} answered for "
        f"{yesterday.isoformat()} with {len(reply.rows)} row(s) (account {smsc.account!r});"
        f" reply shape {describe_shape(reply.raw, reply.fmt)}"
    )


def record_bootstrap(settings: PipelineSettings) -> str:
    from airflow.models import Variable

    Variable.set(
        BOOTSTRAP_VARIABLE,
        json.dumps(
            {
                "pools": [account.pool for account in settings.all_accounts()],
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        ),
        description="Written by python -m smsc_hook.bootstrap; the SMSC DAG checks it",
    )
    return f"variable {BOOTSTRAP_VARIABLE!r}: recorded"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsc_hook.bootstrap", description=__doc__)
    parser.add_argument(
        "--no-api-call", action="store_true", help="check the SMSC connection offline only"
    )
    args = parser.parse_args(argv)
    try:
        settings = PipelineSettings.from_env()
        accounts = settings.all_accounts()
        for account in accounts:
            print(f"bootstrap: {ensure_pool(account.pool)}", flush=True)
        print(f"bootstrap: {migrate_warehouse(settings.warehouse_conn_id)}", flush=True)
        for account in accounts:
            print(f"bootstrap: {check_smsc(settings, account, not args.no_api_call)}", flush=True)
        print(f"bootstrap: {record_bootstrap(settings)}", flush=True)
    except (SmscError, AirflowNotFoundException) as exc:
        print(f"bootstrap failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
