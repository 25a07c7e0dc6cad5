"""The retry decision per error class, applied through Airflow 3.3's ``retry_policy``.

The exception type carries the decision (see ``exceptions``); this policy turns it into
Airflow's: fail at once, or retry after a delay the scheduler waits out with the pool
slot free.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy
from sqlalchemy.exc import InterfaceError, OperationalError

from smsc_hook.exceptions import (
    SmscFatalError,
    SmscIpBlockedError,
    SmscRateLimitedError,
    SmscRetryableError,
)

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

BACKOFF_START = timedelta(seconds=20)
BACKOFF_CAP = timedelta(minutes=10)


def backoff_delay(
    try_number: int, start: timedelta = BACKOFF_START, cap: timedelta = BACKOFF_CAP
) -> timedelta:
    """``start``, doubled per earlier try, never above ``cap``."""
    try:
        return min(cap, start * 2 ** max(try_number - 1, 0))
    except OverflowError:  # a task with ~45+ retries: the doubling outgrew timedelta
        return cap


class SmscRetryPolicy(RetryPolicy):
    """Errors 1 and 2, bad config and bad input fail at once; 9 waits out the rate window;
    4 waits out the IP block; transport faults, malformed replies and a database that
    went away back off exponentially. Anything else: the task's own retry settings.
    """

    def __init__(
        self,
        backoff_start: timedelta = BACKOFF_START,
        backoff_cap: timedelta = BACKOFF_CAP,
        *,
        rate_limit_wait: timedelta | None = None,
        ip_block_wait: timedelta | None = None,
    ):
        self.backoff_start = backoff_start
        self.backoff_cap = backoff_cap
        #: Override the errors' own waits (65 s, 15 min) when the limits are configured.
        self.rate_limit_wait = rate_limit_wait
        self.ip_block_wait = ip_block_wait

    def fixed_wait(self, exception: SmscRetryableError) -> timedelta:
        """The wait for an error that must not back off: its own, unless configured."""
        if isinstance(exception, SmscRateLimitedError) and self.rate_limit_wait is not None:
            return self.rate_limit_wait
        if isinstance(exception, SmscIpBlockedError) and self.ip_block_wait is not None:
            return self.ip_block_wait
        return exception.retry_after

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Context | None = None,
    ) -> RetryDecision:
        if isinstance(exception, SmscFatalError | ValueError):
            return RetryDecision.fail(f"{type(exception).__name__}: not retried")
        if isinstance(exception, SmscRetryableError):
            if exception.backoff:
                delay = backoff_delay(try_number, self.backoff_start, self.backoff_cap)
            else:
                delay = self.fixed_wait(exception)
            return RetryDecision.retry(delay, f"{type(exception).__name__}: retry in {delay}")
        if isinstance(exception, OperationalError | InterfaceError):
            delay = backoff_delay(try_number, self.backoff_start, self.backoff_cap)
            return RetryDecision.retry(
                delay, f"warehouse unreachable or connection lost: retry in {delay}"
            )
        return RetryDecision.default()
