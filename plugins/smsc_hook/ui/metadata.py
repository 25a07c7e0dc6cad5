"""What the page reads from Airflow's metadata database: running backfills, pools, bootstrap.

Runs in the api-server, which owns that database; the ORM models are imported lazily so
the plugin stays cheap for every other Airflow process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class BackfillState:
    """A backfill not completed yet, with its runs' states and the days it covers."""

    id: int
    dag_id: str
    created_at: datetime
    is_paused: bool
    days: list[date]
    runs: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolState:
    name: str
    present: bool
    slots: float = 0
    running: int = 0
    queued: int = 0
    scheduled: int = 0
    deferred: int = 0


@dataclass(frozen=True)
class MetadataSnapshot:
    """Airflow's side of the page for a set of DAGs and pools."""

    bootstrapped: bool
    backfills: list[BackfillState]
    pools: dict[str, PoolState]


class AirflowMetadata:
    """Reads the metadata database with the api-server's own session factory."""

    def read(
        self, dag_ids: Sequence[str], pools: Sequence[str], timezone: str, bootstrap_key: str
    ) -> MetadataSnapshot:
        from airflow.models import Variable
        from airflow.models.backfill import Backfill, BackfillDagRun
        from airflow.models.dagrun import DagRun
        from airflow.models.pool import Pool
        from airflow.utils.session import create_session
        from sqlalchemy import func, select

        tz = ZoneInfo(timezone)
        with create_session() as session:
            bootstrapped = (
                session.scalar(select(func.count()).where(Variable.key == bootstrap_key)) or 0
            ) > 0
            running = session.execute(
                select(Backfill.id, Backfill.dag_id, Backfill.created_at, Backfill.is_paused)
                .where(Backfill.dag_id.in_(list(dag_ids)), Backfill.completed_at.is_(None))
                .order_by(Backfill.id)
            ).all()
            backfills = []
            if running:
                ids = [row.id for row in running]
                days: dict[int, list[date]] = {i: [] for i in ids}
                for backfill_id, logical_date in session.execute(
                    select(BackfillDagRun.backfill_id, BackfillDagRun.logical_date)
                    .where(
                        BackfillDagRun.backfill_id.in_(ids),
                        BackfillDagRun.dag_run_id.is_not(None),
                    )
                    .order_by(BackfillDagRun.sort_ordinal)
                ):
                    if logical_date is not None:
                        days[backfill_id].append(logical_date.astimezone(tz).date())
                states: dict[int, dict[str, int]] = {i: {} for i in ids}
                for backfill_id, state, count in session.execute(
                    select(DagRun.backfill_id, DagRun.state, func.count())
                    .where(DagRun.backfill_id.in_(ids))
                    .group_by(DagRun.backfill_id, DagRun.state)
                ):
                    states[backfill_id][str(getattr(state, "value", state))] = int(count)
                backfills = [
                    BackfillState(
                        row.id,
                        row.dag_id,
                        row.created_at,
                        bool(row.is_paused),
                        sorted(set(days[row.id])),
                        states[row.id],
                    )
                    for row in running
                ]
            stats = Pool.slots_stats(session=session)
        pool_states = {}
        for name in pools:
            stat = stats.get(name)
            pool_states[name] = (
                PoolState(
                    name,
                    True,
                    stat["total"],
                    stat["running"],
                    stat["queued"],
                    stat["scheduled"],
                    stat["deferred"],
                )
                if stat is not None
                else PoolState(name, False)
            )
        return MetadataSnapshot(bootstrapped, backfills, pool_states)
