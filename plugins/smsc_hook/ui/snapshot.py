"""One page's worth of data: per account the Now, Calls and Data panels, or why not.

Reads the warehouse through the connection the DAG uses (``SMSC_WAREHOUSE_CONN_ID``) and
Airflow's metadata; turns failures into a short message naming the error class, never a
stack trace, a SQL statement or a secret.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from smsc_hook.airflow.settings import BOOTSTRAP_VARIABLE, AccountConfig, PipelineSettings
from smsc_hook.checks.gaps import backfill_command
from smsc_hook.ui import queries, status
from smsc_hook.ui.metadata import AirflowMetadata, MetadataSnapshot
from smsc_hook.warehouse.ledger import AUTH_FAILURE_WINDOW
from smsc_hook.warehouse.migrations import pending_migrations

PANELS = ("now", "calls", "data")
DEFAULT_HOURS = 3
MAX_HOURS = 24
BOOTSTRAP_COMMAND = "airflow smsc bootstrap"

#: conn_id -> (the URL it was made for, the engine).
_engines: dict[str, tuple[str, Engine]] = {}
_engines_lock = threading.Lock()


def public_error(exc: BaseException, secrets: Sequence[str] = ()) -> dict[str, str]:
    """``{"error": class name, "message": first line}`` with every secret masked.

    For a SQLAlchemy error the driver's own message is used: SQLAlchemy's text adds the
    statement and its parameters.
    """
    orig = getattr(exc, "orig", None) if isinstance(exc, SQLAlchemyError) else None
    source = orig if orig is not None else exc
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    message = lines[0] if lines else "no details"
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return {"error": type(source).__name__, "message": message[:500]}


def warehouse_engine(conn_id: str) -> tuple[Engine, URL]:
    """The warehouse engine for ``conn_id``, kept while the connection's URL stays the same
    (a changed password or host gets a new engine; the old one is disposed of)."""
    from smsc_hook.warehouse.engine import make_engine, warehouse_url

    url = warehouse_url(conn_id)
    if "connect_timeout" not in url.query:
        # An unreachable warehouse should cost the page seconds, not libpq's default wait.
        url = url.update_query_dict({"connect_timeout": "5"})
    key = url.render_as_string(hide_password=False)
    with _engines_lock:
        cached = _engines.get(conn_id)
        if cached is not None and cached[0] == key:
            return cached[1], url
        engine = make_engine(url)
        queries.count_queries(engine)
        _engines[conn_id] = (key, engine)
    if cached is not None:
        cached[1].dispose()
    return engine, url


def account_key(account: AccountConfig) -> str:
    """The warehouse's key for the account: its SMSC login (or the connection's ``account``)."""
    from smsc_hook.client.hook import SmscHook

    return SmscHook(account.conn_id).settings.account


def _seconds(later: datetime | None, now: datetime) -> float | None:
    return None if later is None else max((later - now).total_seconds(), 0.0)


def now_panel(
    conn: Connection,
    settings: PipelineSettings,
    account: AccountConfig,
    key: str,
    meta: MetadataSnapshot | None,
) -> dict[str, Any]:
    limit = settings.rate
    state = queries.ledger_state(
        conn,
        key,
        span=limit.span,
        calls=limit.calls,
        ip_block_pause=settings.ip_block_pause,
        auth_window=AUTH_FAILURE_WINDOW,
    )
    now = state.now
    slot = status.next_free_slot(state.recent_starts, limit, now)
    found = status.cooldowns(
        now=now,
        last_ip_block=state.last_ip_block,
        ip_block_pause=settings.ip_block_pause,
        auth_failures=state.auth_failures,
    )
    blocked_until = max((c.until for c in found), default=None)
    latency = timedelta(milliseconds=state.mean_latency_ms or 0)
    backfills = []
    for backfill in meta.backfills if meta else []:
        if backfill.dag_id != account.dag_id:
            continue
        loaded = queries.days_loaded_since(conn, key, backfill.days, backfill.created_at)
        # A call in flight is for a day not loaded yet: it needs no slot any more.
        calls_left = max(
            max(len(backfill.days) - loaded, 0) * len(account.series) - state.in_flight, 0
        )
        days_left = max(len(backfill.days) - loaded, 0)
        budget = (
            status.eta(calls_left, state.recent_starts, limit, now, blocked_until) + latency
            if calls_left and not backfill.is_paused
            else None
        )
        observed = (
            status.eta_at_pace(days_left, loaded, backfill.created_at, now)
            if not backfill.is_paused
            else None
        )
        # The budget bounds it from below; the pace so far sees task start-up and retries.
        done_at = max((t for t in (budget, observed) if t is not None), default=None)
        backfills.append(
            {
                "id": backfill.id,
                "dag_id": backfill.dag_id,
                "first_day": backfill.days[0] if backfill.days else None,
                "last_day": backfill.days[-1] if backfill.days else None,
                "days_expected": len(backfill.days),
                "days_loaded": loaded,
                "calls_left": calls_left,
                "runs": backfill.runs,
                "is_paused": backfill.is_paused,
                "created_at": backfill.created_at,
                "eta": done_at,
                "eta_in_s": _seconds(done_at, now),
                "eta_rate_budget": budget,
                "eta_rate_budget_in_s": _seconds(budget, now),
                "eta_observed_pace": observed,
                "ui_path": f"dags/{backfill.dag_id}/backfills",
            }
        )
    pool = meta.pools.get(account.pool) if meta else None
    return {
        "now": now,
        "limit": {
            "calls": limit.calls,
            "window_s": limit.window.total_seconds(),
            "span_s": limit.span.total_seconds(),
        },
        "calls_in_window": len([s for s in state.recent_starts if s > now - limit.span]),
        "next_slot": max(slot, blocked_until) if blocked_until else slot,
        "next_slot_in_s": _seconds(max(slot, blocked_until) if blocked_until else slot, now),
        "last_call": state.last_call,
        "mean_latency_ms": state.mean_latency_ms,
        "in_flight": state.in_flight,
        "cooldowns": [
            {
                "kind": c.kind,
                "since": c.since,
                "until": c.until,
                "ends_in_s": _seconds(c.until, now),
                "reason": c.reason,
            }
            for c in found
        ],
        "pool": None
        if pool is None
        else {
            "name": pool.name,
            "present": pool.present,
            "slots": pool.slots,
            "running": pool.running,
            "queued": pool.queued,
            "scheduled": pool.scheduled,
            "deferred": pool.deferred,
        },
        "backfills": backfills,
    }


def calls_panel(
    conn: Connection, settings: PipelineSettings, key: str, hours: int, now: datetime
) -> dict[str, Any]:
    minutes = hours * 60
    since = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    counted = queries.calls_per_minute(conn, key, since)
    series = status.minute_series(counted, now, minutes)
    ledger = []
    for row in queries.last_calls(conn, key):
        caller = status.parse_caller(row["caller"])
        ledger.append(
            {
                **row,
                "ui_path": caller.ui_path() if caller else None,
                "caller_label": caller.label if caller else row["caller"],
            }
        )
    return {
        "hours": hours,
        "since": since,
        "limit_per_minute": round(status.calls_per_minute_limit(settings.rate), 3),
        "total": sum(c for _, c, _ in series),
        "failed": sum(f for _, _, f in series),
        "peak_per_minute": max((c for _, c, _ in series), default=0),
        "minutes": [{"minute": m, "calls": c, "failed": f} for m, c, f in series],
        "ledger": ledger,
    }


def data_panel(
    conn: Connection, account: AccountConfig, key: str, meta: MetadataSnapshot | None
) -> dict[str, Any]:
    running = [b for b in (meta.backfills if meta else []) if b.dag_id == account.dag_id]
    gaps = []
    for gap in queries.gap_ranges(conn, key):
        being_filled = {
            b.id: sum(1 for day in b.days if gap["first"] <= day <= gap["last"]) for b in running
        }
        fill = "python -m smsc_hook.gaps"
        if account.name:
            fill += f" --account {account.name}"
        if gap["series"] != "main":
            fill += f" --series {gap['series']}"
        gaps.append(
            {
                **gap,
                "gaps_command": fill,
                # The main series is loaded by the DAG's own runs; balance2 days come with
                # them, so a range of either is filled by a backfill of the DAG.
                "backfill_command": " ".join(
                    backfill_command(account.dag_id, gap["first"], gap["last"])
                ),
                # Days of the range a running backfill is about to load.
                "being_filled": {str(k): v for k, v in being_filled.items() if v},
            }
        )
    return {
        "gaps": gaps,
        # Each series' total, also when its ranges were cut to the first GAP_RANGES.
        "gap_days": sum({g["series"]: g["series_days"] for g in gaps}.values()),
        "reconciliation": queries.reconciliation(conn, key),
        "revisions": queries.revisions(conn, key),
    }


def collect(
    accounts: Sequence[AccountConfig],
    *,
    settings: PipelineSettings,
    metadata: AirflowMetadata,
    panels: Sequence[str] = PANELS,
    hours: int = DEFAULT_HOURS,
) -> dict[str, Any]:
    """Everything the page (or a JSON endpoint) shows for ``accounts``."""
    started = time.perf_counter()
    with queries.counting() as statements:
        page = _collect(accounts, settings, metadata, panels, hours)
    page["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    page["warehouse_queries"] = len(statements)
    return page


def _collect(
    accounts: Sequence[AccountConfig],
    settings: PipelineSettings,
    metadata: AirflowMetadata,
    panels: Sequence[str],
    hours: int,
) -> dict[str, Any]:
    page: dict[str, Any] = {
        "panels": list(panels),
        "warehouse": {"conn_id": settings.warehouse_conn_id, "ok": False},
        "airflow": {"ok": False},
        "bootstrapped": None,
        "accounts": [],
    }
    meta: MetadataSnapshot | None = None
    if "now" in panels or "data" in panels:
        try:
            meta = metadata.read(
                [a.dag_id for a in accounts],
                [a.pool for a in accounts],
                settings.timezone,
                BOOTSTRAP_VARIABLE,
            )
            page["airflow"] = {"ok": True}
            page["bootstrapped"] = meta.bootstrapped
        except Exception as exc:  # the page degrades to the warehouse panels
            page["airflow"] = {"ok": False, **public_error(exc)}
    secrets: list[str] = []
    try:
        engine, url = warehouse_engine(settings.warehouse_conn_id)
        secrets = [url.password or ""] if url.password else []
        page["warehouse"]["where"] = f"{url.host}:{url.port or 5432}/{url.database}"
        with engine.connect() as conn:
            if not queries.schema_present(conn):
                page["warehouse"].update(
                    ok=False,
                    empty=True,
                    error="NoBootstrap",
                    message=(
                        "the warehouse has no smsc schema yet: run the bootstrap "
                        f"({BOOTSTRAP_COMMAND}, or python -m smsc_hook.bootstrap), which "
                        "applies the migrations and creates the pool"
                    ),
                )
                return page
            pending = pending_migrations(engine)
            if pending:
                page["warehouse"].update(
                    ok=False,
                    error="SchemaBehind",
                    message=(
                        f"{', '.join(pending)} not applied yet: run the bootstrap"
                        f" ({BOOTSTRAP_COMMAND}), which applies them"
                    ),
                )
                return page
            page["warehouse"]["ok"] = True
            for account in accounts:
                page["accounts"].append(
                    _account(conn, settings, account, meta, panels, hours, secrets)
                )
    except Exception as exc:  # whatever it is, the page says so instead of failing
        page["warehouse"].update(ok=False, **public_error(exc, secrets))
    return page


def _account(
    conn: Connection,
    settings: PipelineSettings,
    account: AccountConfig,
    meta: MetadataSnapshot | None,
    panels: Sequence[str],
    hours: int,
    secrets: Sequence[str],
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": account.name or "default",
        "dag_id": account.dag_id,
        "conn_id": account.conn_id,
        "pool": account.pool,
        "series": list(account.series),
    }
    try:
        key = account_key(account)
    except Exception as exc:  # one account's bad connection must not hide the others
        view.update(public_error(exc, secrets))
        return view
    view["account"] = key
    if "now" in panels:
        view["now"] = now_panel(conn, settings, account, key, meta)
    if "calls" in panels:
        now = view["now"]["now"] if "now" in view else queries.database_now(conn)
        view["calls"] = calls_panel(conn, settings, key, hours, now)
    if "data" in panels:
        view["data"] = data_panel(conn, account, key, meta)
    return view
