"""Operators: fetch SMSC statistics and land them in the warehouse, paced and atomic."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from smsc_hook.airflow.retry import SmscRetryPolicy
from smsc_hook.airflow.windows import local_day, zone
from smsc_hook.client.exceptions import SmscConfigError, SmscDisputedReplyError
from smsc_hook.warehouse.ledger import DEFAULT_LIMIT, DEFAULT_WINDOW, IP_BLOCK_PAUSE, RateLimit

if TYPE_CHECKING:
    from airflow.sdk import Asset, AssetAlias, Context
    from sqlalchemy import Engine

    from smsc_hook.client.hook import SmscHook, StatReply
    from smsc_hook.observability.lineage import LoadLineage
    from smsc_hook.warehouse.writer import LoadResult, Warehouse

# The HTTP client, the warehouse writer, metrics and lineage are imported where a task
# runs, not here: every task process and the dag-processor parse the DAG file, which
# imports this module, and most of those processes never call SMSC.

DEFAULT_RETRIES = 8
#: Nothing holds the account's pool slot for ever: two fetches of a day, each over every
#: host at its per-attempt deadline, plus the waits for ledger slots, fit well inside.
DEFAULT_EXECUTION_TIMEOUT = timedelta(minutes=30)
#: Pool slot priority (weight rule "absolute"): a day's own load always goes before the
#: re-fetches of a month whose total differed, even when they were queued first.
LOAD_PRIORITY = 100
RECONCILE_PRIORITY = 1
log = logging.getLogger(__name__)


def parse_day(value: str | date) -> date:
    """``date`` or ``YYYY-MM-DD``; a day that has not begun anywhere is refused."""
    from smsc_hook.warehouse.writer import latest_begun_day

    if isinstance(value, date):
        day = value
    else:
        try:
            day = date.fromisoformat(str(value).strip())
        except ValueError:
            raise SmscConfigError(f"day must be YYYY-MM-DD, got {value!r}") from None
    if day > latest_begun_day():
        raise SmscConfigError(f"day {day.isoformat()} is in the future: SMSC has no statistics yet")
    return day


def caller_id(context: Context) -> str:
    """Task instance identity for the ledger: dag/run/task[map]#try."""
    ti = context["ti"]
    index = f"[{ti.map_index}]" if ti.map_index is not None and ti.map_index >= 0 else ""
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}{index}#{ti.try_number}"


def parse_month(value: str | date) -> date:
    """``YYYY-MM`` or a date in the month → its first day."""
    if isinstance(value, date):
        return value.replace(day=1)
    try:
        return date.fromisoformat(f"{str(value).strip()[:7]}-01")
    except ValueError:
        raise SmscConfigError(f"month must be YYYY-MM, got {value!r}") from None


@dataclass
class _Session:
    """A hook with its pacer and the warehouse engine, for one task execution."""

    hook: SmscHook
    engine: Engine
    account: str
    series: str

    def lineage(self) -> LoadLineage:
        """What this session reads (the SMSC endpoint, by account) and writes (the tables)."""
        from smsc_hook.observability.lineage import LoadLineage, WarehouseLocation

        return LoadLineage(
            endpoint=self.hook.settings.base_urls[0],
            account=self.account,
            warehouse=WarehouseLocation.from_url(self.engine.url),
        )

    #: users.php options, for the ``subclients`` series.
    reseller: int = 0
    hide_deleted: bool = False

    def fetch(self, start: date, end: date) -> StatReply:
        """One paced call for the session's series: users.php for subclients, else get.php."""
        if self.series == "subclients":
            return self.hook.fetch_subclients_stat(
                start, end, reseller=self.reseller, hide_deleted=self.hide_deleted
            )
        return self.hook.fetch_stat(start, end)

    def load(self, day: date) -> tuple[StatReply, LoadResult]:
        """Fetch ``day`` (paced) and replace what is stored for it.

        A reply that would remove stored logins (or empty a stored day) is applied only
        when a second paced fetch agrees; otherwise both replies are archived, the stored
        rows stay as they are and :class:`SmscDisputedReplyError` is raised.
        """
        from smsc_hook.warehouse.writer import RemovalNeedsWitness, Warehouse, same_rows

        warehouse = Warehouse(self.engine)
        reply = self.fetch(day, day)
        try:
            return reply, self._store(warehouse, day, reply, removals_confirmed=False)
        except RemovalNeedsWitness as removal:
            log.warning("%s; fetching %s again to confirm", removal, day.isoformat())
            removed = removal
        witness = self.fetch(day, day)
        if not same_rows(reply.rows, witness.rows):
            warehouse.archive_disputed(
                account=self.account,
                series=self.series,
                day=day,
                replies=[(reply.raw, reply.fmt), (witness.raw, witness.fmt)],
                reason=f"{removed}; a second fetch disagreed",
            )
            raise SmscDisputedReplyError(
                f"{self.account}/{self.series} {day.isoformat()}: the reply would remove stored "
                f"login(s) {', '.join(removed.removed_logins[:10])} ({len(reply.rows)} row(s) "
                f"fetched), but a second fetch returned {len(witness.rows)} different row(s); "
                "nothing was changed, both replies are "
                "in smsc.disputed_reply. Load the day again later "
                "(backfill with --reprocess-behavior completed)"
            )
        log.warning("%s %s: the second fetch agrees; applying it", self.account, day.isoformat())
        return witness, self._store(warehouse, day, witness, removals_confirmed=True)

    def _store(
        self, warehouse: Warehouse, day: date, reply: StatReply, *, removals_confirmed: bool
    ) -> LoadResult:
        return warehouse.load_day(
            account=self.account,
            series=self.series,
            day=day,
            rows=reply.rows,
            raw_reply=reply.raw,
            reply_format=reply.fmt,
            removals_confirmed=removals_confirmed,
        )


class _SmscWarehouseOperator(BaseOperator):
    """What both operators share: connections, pool, pacing and the retry policy."""

    def __init__(
        self,
        *,
        smsc_conn_id: str = "smsc_default",
        postgres_conn_id: str = "smsc_warehouse",
        account: str | None = None,
        balance2: bool | None = None,
        subclients: bool = False,
        reseller: int = 0,
        hide_deleted: bool = False,
        rate_limit: int = DEFAULT_LIMIT,
        rate_window: timedelta = DEFAULT_WINDOW,
        ip_block_pause: timedelta = IP_BLOCK_PAUSE,
        pool: str = "smsc_api",
        retries: int = DEFAULT_RETRIES,
        retry_policy: Any = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("execution_timeout", DEFAULT_EXECUTION_TIMEOUT)
        super().__init__(
            pool=pool, retries=retries, retry_policy=retry_policy or SmscRetryPolicy(), **kwargs
        )
        self.smsc_conn_id = smsc_conn_id
        self.postgres_conn_id = postgres_conn_id
        self.account = account
        self.balance2 = balance2
        self.subclients = subclients
        self.reseller = reseller
        self.hide_deleted = hide_deleted
        if subclients and balance2:
            raise SmscConfigError(
                f"{self.task_id}: subclients=True and balance2=True exclude each other"
                " (users.php has no balance2 series); load balance2 in its own task"
            )
        self.rate = RateLimit(rate_limit, rate_window)
        self.ip_block_pause = ip_block_pause
        #: Filled by ``execute`` for the OpenLineage listener (same process, same object).
        self._lineage: LoadLineage | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the SMSC endpoint read and the warehouse tables written, with counts.

        Called by the OpenLineage provider's listener after ``execute``; imports OpenLineage
        only then. None before ``execute`` ran (nothing was read or written).
        """
        if self._lineage is None:
            return None
        from smsc_hook.observability.lineage import operator_lineage

        return operator_lineage(self._lineage)

    @contextmanager
    def _session(self, context: Context) -> Iterator[_Session]:
        from smsc_hook.client.hook import SmscHook
        from smsc_hook.warehouse.engine import make_engine, warehouse_url
        from smsc_hook.warehouse.ledger import LedgerPacer
        from smsc_hook.warehouse.migrations import pending_migrations

        hook = SmscHook(self.smsc_conn_id)
        settings = hook.settings  # configuration errors surface before any call
        if self.balance2 is not None and self.balance2 != settings.balance2:
            hook.settings = settings = replace(settings, balance2=self.balance2)
        account = self.account or settings.account
        engine = make_engine(warehouse_url(self.postgres_conn_id))
        try:
            pending = pending_migrations(engine)
            if pending:
                raise SmscConfigError(
                    f"warehouse schema is behind ({', '.join(pending)} not applied): "
                    "run `python -m smsc_hook.bootstrap`"
                )
            hook.pacer = LedgerPacer(
                engine,
                account,
                limit=self.rate,
                caller=caller_id(context),
                ip_block_pause=self.ip_block_pause,
            )
            if self.subclients:
                series = "subclients"
            else:
                series = "balance2" if settings.balance2 else "main"
            yield _Session(
                hook,
                engine,
                account,
                series,
                reseller=self.reseller,
                hide_deleted=self.hide_deleted,
            )
        finally:
            engine.dispose()


@dataclass(frozen=True)
class RunPublication:
    """How a run's loads stand in for its publishing task outside scheduled runs.

    A backfill or manual run loads exactly its day, one load per series. The load that
    lands last (every other load of the run has succeeded) emits ``asset`` itself, through
    ``alias`` among its outlets, and skips ``task_id``, so that task starts no process:
    still one event per run, none while a load has failed. Scheduled runs leave it to the
    task, which also waits for the lookback re-fetches.
    """

    asset: Asset
    alias: AssetAlias
    task_id: str = "publish"


class SmscStatsToPostgresOperator(_SmscWarehouseOperator):
    """Load one day of SMSC sending statistics into the ``smsc`` warehouse schema.

    The call waits for a slot in the warehouse's API call ledger (``rate_limit`` calls per
    ``rate_window`` per account, across every worker), then the day's rows replace the
    stored ones in one transaction. Retries follow
    :class:`~smsc_hook.airflow.retry.SmscRetryPolicy`.

    :param day: ``YYYY-MM-DD`` (templated); default: the local day of the run's data
        interval in ``timezone`` (default: the DAG's time zone).
    :param smsc_conn_id: Airflow connection of type ``smsc``.
    :param postgres_conn_id: Airflow connection of type ``postgres`` for the warehouse.
    :param account: warehouse key for the account; default from the SMSC connection.
    :param balance2: load the ``balance2`` series instead of ``main``; default from the
        connection's ``balance2`` extra.
    :param subclients: load the ``subclients`` series (``users.php?get_stat``, a reseller's
        subclients, with ``reseller`` 0/1 and ``hide_deleted``) instead.
    :param publication: outside scheduled runs, the run's last load publishes its asset
        and skips the publishing task (see :class:`RunPublication`); its alias must be
        among ``outlets``.
    """

    template_fields: Sequence[str] = ("day", "smsc_conn_id", "postgres_conn_id", "account")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        day: str | date | None = None,
        timezone: str | None = None,
        publication: RunPublication | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.day = day
        self.timezone = timezone
        self.publication = publication
        if publication is not None and publication.alias not in self.outlets:
            raise SmscConfigError(
                f"{self.task_id}: publication through alias {publication.alias.name!r}"
                " needs that alias among the task's outlets"
            )

    def execute(self, context: Context) -> dict[str, Any]:
        day = self._resolve_day(context)
        self.day = day.isoformat()  # the task's label (``map_index_template``) names it
        with self._session(context) as session:
            reply, result = session.load(day)
        from smsc_hook.observability import metrics

        metrics.day_loaded(
            session.account,
            session.series,
            rows=len(reply.rows),
            inserted=result.inserted,
            changed=result.updated,
            deleted=result.deleted,
        )
        lineage = session.lineage()
        lineage.endpoint = reply.base_url
        lineage.input_rows = len(reply.rows)
        lineage.outputs = {"stat_day": len(reply.rows), "load_log": 1, "raw_reply": 1}
        if result.revisions:
            lineage.outputs["stat_revision"] = result.revisions
        self._lineage = lineage
        self.log.info(
            "Loaded %s %s %s: %d row(s) (%d new, %d changed, %d unchanged, %d removed)",
            session.account,
            session.series,
            day.isoformat(),
            len(reply.rows),
            result.inserted,
            result.updated,
            result.unchanged,
            result.deleted,
        )
        loaded = {
            "account": session.account,
            "series": session.series,
            "day": day.isoformat(),
            "rows": len(reply.rows),
            "inserted": result.inserted,
            "updated": result.updated,
            "deleted": result.deleted,
            "load_id": result.load_id,
        }
        if self.publication is not None:
            self._publish_if_last(context, self.publication, loaded)
        return loaded

    def _publish_if_last(
        self, context: Context, publication: RunPublication, loaded: dict[str, Any]
    ) -> None:
        """Emit the run's asset event and skip its publishing task, when this load is the
        run's last outside a scheduled run; otherwise nothing (see RunPublication)."""
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        from smsc_hook.airflow.planning import last_load_of_run

        if not last_load_of_run(context, self.task_id):
            return
        context["outlet_events"][publication.alias].add(publication.asset)
        # Skipping ends the task without pushing its result: push it first.
        context["ti"].xcom_push(key="return_value", value=loaded)
        self.log.info(
            "the run's last load: asset %r published, %s skipped",
            publication.asset.name,
            publication.task_id,
        )
        raise DownstreamTasksSkipped(tasks=[publication.task_id])

    def _resolve_day(self, context: Context) -> date:
        if self.day is not None:
            return parse_day(self.day)
        tz_name = self.timezone or context["dag"].timezone.name
        start = context.get("data_interval_start") or context["logical_date"]
        if start is None:
            raise SmscConfigError("no day given and the run has no data interval")
        return parse_day(local_day(start, zone(tz_name)))


class SmscReconcileMonthOperator(_SmscWarehouseOperator):
    """First check of a closed month: SMSC's month total against the stored days, per login.

    A month with a day never loaded is recorded as ``incomplete`` and costs no call. A
    complete month costs one paced call; the check goes to ``smsc.reconciliation_check``
    (and ``smsc.reconciliation`` per login). On a difference the task returns the month's
    days, which the DAG re-fetches as separate, lower-priority mapped tasks (so the pool
    slot is given back between days) before :func:`~smsc_hook.checks.reconciliation.verify_month`.

    :param month: ``YYYY-MM`` (templated).
    :param timezone: the account's zone, which decides whether the month has ended.
    """

    template_fields: Sequence[str] = ("month", "smsc_conn_id", "postgres_conn_id", "account")
    ui_color = "#fdf3e8"

    def __init__(self, *, month: str | date, timezone: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.month = month
        self.timezone = timezone

    def execute(self, context: Context) -> dict[str, Any]:
        from smsc_hook.checks.reconciliation import check_month, month_days

        month = parse_month(self.month)
        with self._session(context) as session:
            result = check_month(
                engine=session.engine,
                account=session.account,
                series=session.series,
                month=month,
                fetch_month=lambda first, last: session.fetch(first, last).rows,
                today=datetime.now(zone(self.timezone)).date() if self.timezone else None,
            )
        lineage = session.lineage()
        lineage.outputs = {"reconciliation_check": 1, "reconciliation": len(result.checks)}
        self._lineage = lineage
        where = f"{session.account} {session.series} {month:%Y-%m}"
        if result.status == "incomplete":
            self.log.warning(
                "%s not reconciled: %d day(s) never loaded (%s); no API call made. The gap "
                "check reports them and `python -m smsc_hook.gaps` fills them",
                where,
                len(result.missing),
                ", ".join(day.isoformat() for day in result.missing[:10])
                + (" …" if len(result.missing) > 10 else ""),
            )
        elif result.matched:
            self.log.info("%s: all %d login(s) match SMSC's month total", where, len(result.checks))
        else:
            self.log.warning(
                "%s differs from SMSC's month total (%s): re-fetching its days", where,
                result.differing(),
            )  # fmt: skip
        return {
            "account": session.account,
            "series": session.series,
            "month": f"{month:%Y-%m}",
            "balance2": session.series == "balance2",
            "subclients": session.series == "subclients",
            "check_id": result.check_id,
            "status": result.status,
            "logins": len(result.checks),
            "missing_days": len(result.missing),
            "refetch": []
            if result.status != "differs"
            else [d.isoformat() for d in month_days(month)],
        }
