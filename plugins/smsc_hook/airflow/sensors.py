"""A sensor that turns a silent pool hang into a failed task naming the fix."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from smsc_hook.airflow.planning import pool_in_use

if TYPE_CHECKING:
    from airflow.sdk import Context


class SmscPoolSensor(BaseSensorOperator):
    """Succeed once the run's ``load_day`` tasks got a slot in ``smsc_pool``; fail with the
    fix when they wait for ``bound`` while no SMSC task of the DAG is queued or running.

    Runs in reschedule mode in the default pool: between pokes it holds no worker slot,
    and the usual first poke already sees the loads queued.

    :param smsc_pool: the pool the account's SMSC tasks run in.
    :param bound: how long the run may go without any sign of that pool working.
    """

    template_fields: Sequence[str] = ("smsc_pool",)
    ui_color = "#f0f0f0"

    def __init__(
        self,
        *,
        smsc_pool: str,
        bound: timedelta = timedelta(minutes=10),
        poke_interval: float = 20,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        # The poke raises with the fix at ``bound``; the sensor's own timeout is a backstop.
        kwargs.setdefault("timeout", bound.total_seconds() * 6)
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.smsc_pool = smsc_pool
        self.bound = bound

    def poke(self, context: Context) -> PokeReturnValue:
        seen = pool_in_use(context, self.smsc_pool, self.bound)
        return PokeReturnValue(is_done=seen is not None, xcom_value=seen)
