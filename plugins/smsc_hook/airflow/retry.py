"""The retry decision per error class, applied through Airflow 3.3's ``retry_policy``.

The exception type carries the decision (see ``exceptions``); this policy turns it into
Airflow's: fail at once, or retry after a delay the scheduler waits out with the pool
slot free.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from smsc_hook.client.exceptions import (
    SmscFatalError,
    SmscIpBlockedError,
    SmscRateLimitedError,
    SmscRetryableError,
)

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

BACKOFF_START = timedelta(seconds=20)
BACKOFF_CAP = timedelta(minutes=10)

#: SQLSTATEs (and classes, by their first two characters) a later try can get past: the
#: connection broke (08), the server shut down or crashed (57P01-03), a transaction lost a
#: serialization or deadlock race (40), the server ran short of disk, memory or connection
#: slots (53), a lock or statement timed out (55P03, 57014).
_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "55P03", "57014"})
_TRANSIENT_CLASSES = frozenset({"08", "40", "53"})
#: SQLSTATE classes that say the statement itself cannot succeed, however often it is tried:
#: data exception (22: e.g. an amount beyond numeric's range), integrity (23), program limit
#: (54: e.g. a 3000-character login over the index row size), syntax or access (42),
#: feature not supported (0A). PostgreSQL raises some of them as OperationalError.
_FATAL_CLASSES = frozenset({"0A", "22", "23", "42", "54"})


def database_error_is_transient(exception: BaseException) -> bool | None:
    """True for a database error a retry can get past, False for one it cannot.

    Decided by the SQLSTATE the driver reports (psycopg2's ``pgcode``), else by the error's
    class: a connection that never opened has no SQLSTATE and is an ``OperationalError``.
    None when ``exception`` is no database error.
    """
    driver_error = exception.orig if isinstance(exception, DBAPIError) else exception
    sqlstate = getattr(driver_error, "pgcode", None) or getattr(driver_error, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        if sqlstate in _TRANSIENT_SQLSTATES or sqlstate[:2] in _TRANSIENT_CLASSES:
            return True
        if sqlstate[:2] in _FATAL_CLASSES:
            return False
    if not isinstance(exception, DBAPIError):
        return None
    # DataError, IntegrityError, ProgrammingError, ...: the statement itself is wrong.
    return isinstance(exception, OperationalError | InterfaceError)


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
    went away back off exponentially. A database error that retrying cannot fix (bad data,
    integrity, a program limit, SQL or permissions) fails at once: every retry would spend
    another API call. Anything else: the task's own retry settings.
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
        #: Override the errors' own waits (65 s, 31 min) when the limits are configured.
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
        transient = database_error_is_transient(exception)
        if transient:
            delay = backoff_delay(try_number, self.backoff_start, self.backoff_cap)
            return RetryDecision.retry(
                delay, f"warehouse unreachable or connection lost: retry in {delay}"
            )
        if transient is False:
            return RetryDecision.fail(
                f"{type(exception).__name__}{_sqlstate(exception)}: the warehouse refused the "
                "statement itself; not retried (each try would spend an API call)"
            )
        return RetryDecision.default()


def _sqlstate(exception: BaseException) -> str:
    driver_error = exception.orig if isinstance(exception, DBAPIError) else exception
    sqlstate = getattr(driver_error, "pgcode", None)
    return f" (SQLSTATE {sqlstate})" if isinstance(sqlstate, str) else ""
