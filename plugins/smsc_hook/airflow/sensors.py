"""A sensor that turns a silent pool hang into a failed task naming the fix."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.bases.skipmixin import SkipMixin

from smsc_hook.airflow.planning import check_bootstrapped, is_scheduled, pool_in_use
from smsc_hook.airflow.retry import SmscRetryPolicy
from smsc_hook.client.exceptions import SmscConfigError

if TYPE_CHECKING:
    from airflow.sdk import Context


class SmscPoolSensor(BaseSensorOperator, SkipMixin):
    """Succeed once the run's ``load_day`` tasks got a slot in ``smsc_pool``; fail with the
    fix when the bootstrap never created it, or when the loads wait for ``bound`` while no
    SMSC task of the DAG is queued or running.

    Runs in reschedule mode in the default pool, beside the loads: between pokes it holds
    no worker slot, and the usual first poke already sees the loads queued.

    :param smsc_pool: the pool the account's SMSC tasks run in.
    :param bound: how long the run may go without any sign of that pool working.
    :param then: called with the context once the pool is seen working; what it returns
        is the task's XCom (the DAG's lookback plan), so one task start does both.
    :param scheduled_only: task ids this sensor skips in runs that are not scheduled
        (backfills, manual runs), at the run's start: skipped then, they (and what follows
        them) cost no process, and the scheduler stops looking at them while the run's
        load waits for its turn in the pool.
    """

    template_fields: Sequence[str] = ("smsc_pool",)
    ui_color = "#f0f0f0"

    def __init__(
        self,
        *,
        smsc_pool: str,
        bound: timedelta = timedelta(minutes=10),
        poke_interval: float = 20,
        then: Callable[[Context], Any] | None = None,
        scheduled_only: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        # The next look 10 to 19 s after a first one that saw no load, then ever more spaced
        # (up to a minute): a pool that never frees costs a dozen looks over ten minutes.
        # Not sooner: Airflow 3.3 fails a reschedule-mode sensor whose next look is due
        # before the scheduler has read the executor's report of the last one (stale
        # "success" while the task is ``scheduled`` again, apache/airflow#71172); with
        # Celery on two busy cores that report came 5-6 s late, and 2-4 s looks failed.
        kwargs.setdefault("exponential_backoff", True)
        kwargs.setdefault("max_wait", timedelta(seconds=60))
        # That failure leaves the try ``up_for_retry``: the next try looks again. The fix
        # messages below (SmscConfigError) fail at once through the policy, not retried.
        kwargs.setdefault("retries", 2)
        kwargs.setdefault("retry_delay", timedelta(seconds=5))
        kwargs.setdefault("retry_policy", SmscRetryPolicy())
        # The poke raises with the fix at ``bound``; the sensor's own timeout is a backstop.
        kwargs.setdefault("timeout", bound.total_seconds() * 6)
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.smsc_pool = smsc_pool
        self.bound = bound
        self.then = then
        self.scheduled_only = tuple(scheduled_only)

    def poke(self, context: Context) -> PokeReturnValue:
        check_bootstrapped(self.smsc_pool)
        seen = pool_in_use(context, self.smsc_pool, self.bound)
        if seen is None:
            return PokeReturnValue(is_done=False)
        self.log.info("%s", seen)
        if self.scheduled_only and not is_scheduled(context):
            # Skipping ends the task here, without a result: a mapped task among them is
            # skipped before it would expand over it.
            if self.dag is None:
                raise SmscConfigError(f"{self.task_id}: scheduled_only needs the task in a DAG")
            self.skip(ti=context["ti"], tasks=[self.dag.get_task(t) for t in self.scheduled_only])
        result = self.then(context) if self.then is not None else seen
        return PokeReturnValue(is_done=True, xcom_value=result)
