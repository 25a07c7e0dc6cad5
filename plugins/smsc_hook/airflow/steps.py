"""The DAG's small steps around the loads: publishing, the gap check, reconciliation plans.

Plain operators rather than ``@task`` functions: every task process parses the DAG file,
and the decorator would import the standard provider's PythonOperator (and ``packaging``)
in each of them, about a sixth of a task process's start-up. The logic is in
:mod:`smsc_hook.airflow.planning`, imported where a step runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from smsc_hook.airflow.settings import AccountConfig, PipelineSettings


def _all(checks: Sequence[Any]) -> list[Any]:
    """A mapped task's results (a lazy sequence) as a list."""
    return [checks[i] for i in range(len(checks))]


class SmscPublishOperator(BaseOperator):
    """Emit the asset events of ``outlets`` once every day of the run has landed."""

    ui_color = "#e8f7e4"

    def execute(self, context: Context) -> None:
        """Nothing to do: Airflow records the outlets' events when the task succeeds."""


class SmscGapCheckOperator(BaseOperator):
    """Fail when days older than the lookback were never loaded; then return the months
    that close in this run (usually none), for ``reconcile_month`` to expand over."""

    def __init__(
        self, *, pipeline: PipelineSettings, account_config: AccountConfig, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.account_config = account_config

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from smsc_hook.airflow.planning import check_gaps, log, plan_reconciliations

        log.info("gap check: %s", check_gaps(context, self.pipeline, self.account_config))
        return plan_reconciliations(context, self.pipeline, self.account_config)


class SmscRefetchPlanOperator(BaseOperator):
    """Every day of each month whose total differed (usually none), for ``refetch_day``.

    :param checks: the ``reconcile_month`` results (templated: its XCom).
    """

    template_fields: Sequence[str] = ("checks",)

    def __init__(self, *, checks: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checks = checks

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from smsc_hook.airflow.planning import plan_refetches

        return plan_refetches(_all(self.checks))


class SmscVerifyReconciliationOperator(BaseOperator):
    """Compare the re-fetched months with SMSC's recorded totals again (no call).

    :param checks: the ``reconcile_month`` results (templated: its XCom).
    """

    template_fields: Sequence[str] = ("checks",)

    def __init__(self, *, checks: Any, pipeline: PipelineSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checks = checks
        self.pipeline = pipeline

    def execute(self, context: Context) -> list[str]:
        from smsc_hook.airflow.planning import verify_reconciliations

        return verify_reconciliations(_all(self.checks), self.pipeline)
