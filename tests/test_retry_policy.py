"""SmscRetryPolicy: the exception's type decides fail / retry-after-delay / Airflow default."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta

import pytest
from airflow.sdk.definitions.retry_policy import RetryAction, RetryDecision
from sqlalchemy import create_engine, text
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)

from smsc_hook.airflow.retry import BACKOFF_CAP, BACKOFF_START, SmscRetryPolicy, backoff_delay
from smsc_hook.client.exceptions import (
    SmscApiError,
    SmscAuthError,
    SmscConfigError,
    SmscIpBlockedError,
    SmscParametersError,
    SmscRateLimitedError,
    SmscReplyError,
    SmscReplyValueError,
    SmscTransportError,
    SmscUnknownApiError,
    api_error,
)

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def evaluate(exc: BaseException, try_number: int = 1, max_tries: int = 5) -> RetryDecision:
    return SmscRetryPolicy().evaluate(exc, try_number, max_tries)


def db_gone() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("boom"))


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(SmscParametersError(1, "bad period"), id="error-1-parameters"),
        pytest.param(api_error(1, "bad period"), id="error-1-via-api_error"),
        pytest.param(SmscAuthError(2, "invalid login"), id="error-2-auth"),
        pytest.param(api_error(2, "invalid login"), id="error-2-via-api_error"),
        pytest.param(SmscUnknownApiError(77, "???"), id="unknown-api-error"),
        pytest.param(api_error(6, "message denied"), id="unmapped-code-is-unknown"),
        pytest.param(SmscConfigError("SMSC_TIMEZONE bad"), id="config-error"),
        pytest.param(ValueError("bad input day"), id="value-error"),
        pytest.param(
            SmscReplyValueError("row 1: login is 3000 characters"), id="implausible-value"
        ),
    ],
)
@pytest.mark.parametrize("try_number", [1, 3], ids=["first-try", "third-try"])
def test_fatal_errors_fail_at_once(exc: BaseException, try_number: int) -> None:
    decision = evaluate(exc, try_number)
    assert decision.action is RetryAction.FAIL
    assert decision.retry_delay is None
    assert decision.reason
    assert type(exc).__name__ in decision.reason


@pytest.mark.parametrize(
    ("exc", "least", "most"),
    [
        pytest.param(SmscRateLimitedError(9, "too many"), MINUTE, 2 * MINUTE, id="error-9-rate"),
        pytest.param(api_error(9, "too many"), MINUTE, 2 * MINUTE, id="error-9-via-api_error"),
        pytest.param(SmscIpBlockedError(4, "blocked"), 30 * MINUTE, 32 * MINUTE, id="error-4-ip"),
        pytest.param(SmscTransportError("timeout"), 20 * SECOND, 20 * SECOND, id="transport"),
        pytest.param(SmscReplyError("truncated JSON"), 20 * SECOND, 20 * SECOND, id="bad-reply"),
        pytest.param(db_gone(), 20 * SECOND, 20 * SECOND, id="db-operational-error"),
        pytest.param(
            InterfaceError("SELECT 1", {}, Exception("closed")),
            20 * SECOND,
            20 * SECOND,
            id="db-interface-error",
        ),
    ],
)
def test_retryable_errors_retry_after_a_bounded_delay(
    exc: BaseException, least: timedelta, most: timedelta
) -> None:
    decision = evaluate(exc, try_number=1)
    assert decision.action is RetryAction.RETRY
    assert decision.retry_delay is not None
    assert least <= decision.retry_delay <= most
    assert decision.reason


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(RuntimeError("something else"), id="runtime-error"),
        pytest.param(KeyError("rows"), id="key-error"),
        pytest.param(TimeoutError(), id="builtin-timeout"),
        pytest.param(SmscApiError(5, "untyped api error"), id="untyped-api-error"),
    ],
)
def test_other_exceptions_use_the_task_defaults(exc: BaseException) -> None:
    assert evaluate(exc) == RetryDecision.default()


@pytest.mark.parametrize(
    ("exc", "delay"),
    [
        pytest.param(SmscRateLimitedError(9, "too many"), timedelta(seconds=65), id="error-9"),
        pytest.param(SmscIpBlockedError(4, "blocked"), timedelta(minutes=31), id="error-4"),
    ],
)
def test_api_waits_do_not_grow_with_the_try_number(exc: BaseException, delay: timedelta) -> None:
    delays = [evaluate(exc, try_number=n, max_tries=10).retry_delay for n in range(1, 9)]
    assert delays == [delay] * 8


EXPECTED_BACKOFF = [20, 40, 80, 160, 320, 600, 600, 600]


@pytest.mark.parametrize(
    "make_exc",
    [
        pytest.param(lambda: SmscTransportError("reset"), id="transport"),
        pytest.param(lambda: SmscReplyError("html page"), id="bad-reply"),
        pytest.param(db_gone, id="db-operational-error"),
    ],
)
def test_backoff_doubles_from_20_s_and_caps_at_10_min(
    make_exc: Callable[[], BaseException],
) -> None:
    delays = [
        evaluate(make_exc(), try_number=n, max_tries=10).retry_delay
        for n in range(1, len(EXPECTED_BACKOFF) + 1)
    ]
    assert delays == [timedelta(seconds=s) for s in EXPECTED_BACKOFF]


@pytest.mark.parametrize(
    ("try_number", "seconds"),
    [
        pytest.param(0, 20, id="try-0-treated-as-first"),
        pytest.param(1, 20, id="first"),
        pytest.param(2, 40, id="second"),
        pytest.param(5, 320, id="fifth"),
        pytest.param(6, 600, id="capped"),
        pytest.param(60, 600, id="many-retries"),
        pytest.param(10_000, 600, id="absurd-retries-do-not-overflow"),
    ],
)
def test_backoff_delay(try_number: int, seconds: int) -> None:
    assert backoff_delay(try_number) == timedelta(seconds=seconds)
    assert backoff_delay(try_number, BACKOFF_START, BACKOFF_CAP) == timedelta(seconds=seconds)


def test_policy_backoff_is_configurable() -> None:
    policy = SmscRetryPolicy(backoff_start=timedelta(seconds=5), backoff_cap=timedelta(seconds=30))
    delays = [policy.evaluate(SmscTransportError("x"), n, 10).retry_delay for n in range(1, 6)]
    assert delays == [timedelta(seconds=s) for s in (5, 10, 20, 30, 30)]


def test_configured_waits_override_the_errors_own() -> None:
    """A deployment with a different rate window or IP-block pause waits that long instead."""
    policy = SmscRetryPolicy(
        timedelta(seconds=2),
        rate_limit_wait=timedelta(seconds=9),
        ip_block_wait=timedelta(seconds=30),
    )
    limited = policy.evaluate(SmscRateLimitedError(9, "too many"), 1, 9)
    blocked = policy.evaluate(SmscIpBlockedError(4, "blocked"), 1, 9)
    transport = policy.evaluate(SmscTransportError("reset"), 3, 9)
    assert (limited.action, limited.retry_delay) == (RetryAction.RETRY, timedelta(seconds=9))
    assert (blocked.action, blocked.retry_delay) == (RetryAction.RETRY, timedelta(seconds=30))
    assert transport.retry_delay == timedelta(seconds=8)


# --- database errors: by SQLSTATE, from a real PostgreSQL ----------------------------------

#: Statements PostgreSQL refuses whatever the retry: (SQL, expected SQLSTATE).
REFUSED_STATEMENTS = {
    "credit-1e200000": ("SELECT '1e200000'::numeric", "22003"),
    "amount-beyond-column": ("SELECT 12345678901234567890.5::numeric(18, 4)", "22003"),
    "division-by-zero": ("SELECT 1 / 0", "22012"),
    "3000-char-login-index-row": (
        "INSERT INTO logins VALUES ((SELECT string_agg(md5(i::text), '') FROM "
        "generate_series(1, 94) AS i))",
        "54000",
    ),
    "unique-violation": ("INSERT INTO logins VALUES ('demo'), ('demo')", "23505"),
    "syntax": ("SELEC 1", "42601"),
    "undefined-table": ("SELECT * FROM no_such_table", "42P01"),
}


@pytest.fixture(scope="module")
def refused(pg_server_url: str) -> dict[str, DBAPIError]:
    """The SQLAlchemy errors of REFUSED_STATEMENTS, raised by a real server."""
    from devtools import postgres

    errors: dict[str, DBAPIError] = {}
    with postgres.throwaway_database(pg_server_url) as url:
        engine = create_engine(url)
        try:
            for name, (sql, _) in REFUSED_STATEMENTS.items():
                with engine.connect() as conn:
                    conn.execute(text("CREATE TEMP TABLE logins (login text PRIMARY KEY)"))
                    try:
                        conn.execute(text(sql))
                    except DBAPIError as exc:
                        errors[name] = exc
        finally:
            engine.dispose()
    return errors


@pytest.mark.parametrize("name", list(REFUSED_STATEMENTS))
def test_database_refusing_the_statement_fails_at_once(
    refused: dict[str, DBAPIError], name: str
) -> None:
    """Bad data, integrity, program limits and bad SQL are not retried (each try costs a call)."""
    exc = refused[name]
    assert exc.orig.pgcode == REFUSED_STATEMENTS[name][1]
    decision = evaluate(exc, try_number=1)
    assert decision.action is RetryAction.FAIL
    assert REFUSED_STATEMENTS[name][1] in (decision.reason or "")


def test_index_row_size_is_an_operational_error_yet_fatal(
    refused: dict[str, DBAPIError],
) -> None:
    """PostgreSQL raises the index limit as OperationalError: the SQLSTATE decides."""
    exc = refused["3000-char-login-index-row"]
    assert isinstance(exc, OperationalError)
    assert evaluate(exc).action is RetryAction.FAIL


def test_connection_refused_is_retried() -> None:
    """A warehouse that does not answer at all (no SQLSTATE) is retried with backoff."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        engine = create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/x")
        with pytest.raises(OperationalError) as raised:
            engine.connect()
    assert raised.value.orig.pgcode is None
    decision = evaluate(raised.value)
    assert (decision.action, decision.retry_delay) == (RetryAction.RETRY, 20 * SECOND)


def test_terminated_backend_is_retried(pg_server_url: str) -> None:
    """A session the server killed (admin shutdown, crash) is retried with backoff."""
    engine = create_engine(pg_server_url)
    try:
        with pytest.raises(OperationalError) as raised, engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
    finally:
        engine.dispose()
    assert evaluate(raised.value).action is RetryAction.RETRY


class _DriverError(Exception):
    """A DBAPI error carrying a SQLSTATE, for states a test cannot provoke on demand."""

    def __init__(self, pgcode: str) -> None:
        super().__init__(pgcode)
        self.pgcode = pgcode


@pytest.mark.parametrize(
    ("error_class", "pgcode", "action"),
    [
        pytest.param(OperationalError, "57P01", RetryAction.RETRY, id="admin-shutdown"),
        pytest.param(OperationalError, "57P02", RetryAction.RETRY, id="crash-shutdown"),
        pytest.param(OperationalError, "57P03", RetryAction.RETRY, id="cannot-connect-now"),
        pytest.param(OperationalError, "08006", RetryAction.RETRY, id="connection-failure"),
        pytest.param(OperationalError, "40001", RetryAction.RETRY, id="serialization"),
        pytest.param(OperationalError, "53300", RetryAction.RETRY, id="too-many-connections"),
        pytest.param(OperationalError, "54000", RetryAction.FAIL, id="program-limit"),
        pytest.param(InterfaceError, "22021", RetryAction.FAIL, id="bad-encoding"),
        pytest.param(DataError, None, RetryAction.FAIL, id="data-error-no-sqlstate"),
        pytest.param(IntegrityError, None, RetryAction.FAIL, id="integrity-no-sqlstate"),
        pytest.param(ProgrammingError, None, RetryAction.FAIL, id="programming-no-sqlstate"),
        pytest.param(InterfaceError, None, RetryAction.RETRY, id="interface-no-sqlstate"),
    ],
)
def test_database_error_is_classified_by_sqlstate(
    error_class: type[DBAPIError], pgcode: str | None, action: RetryAction
) -> None:
    orig = _DriverError(pgcode) if pgcode else Exception("no sqlstate")
    assert evaluate(error_class("SELECT 1", {}, orig)).action is action
