"""SmscRetryPolicy: the exception's type decides fail / retry-after-delay / Airflow default."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from airflow.sdk.definitions.retry_policy import RetryAction, RetryDecision
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from smsc_hook.exceptions import (
    SmscApiError,
    SmscAuthError,
    SmscConfigError,
    SmscIpBlockedError,
    SmscParametersError,
    SmscRateLimitedError,
    SmscReplyError,
    SmscTransportError,
    SmscUnknownApiError,
    api_error,
)
from smsc_hook.retry import BACKOFF_CAP, BACKOFF_START, SmscRetryPolicy, backoff_delay

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
        pytest.param(SmscIpBlockedError(4, "blocked"), 10 * MINUTE, 30 * MINUTE, id="error-4-ip"),
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
        pytest.param(IntegrityError("INSERT", {}, Exception("duplicate")), id="db-integrity-error"),
    ],
)
def test_other_exceptions_use_the_task_defaults(exc: BaseException) -> None:
    assert evaluate(exc) == RetryDecision.default()


@pytest.mark.parametrize(
    ("exc", "delay"),
    [
        pytest.param(SmscRateLimitedError(9, "too many"), timedelta(seconds=65), id="error-9"),
        pytest.param(SmscIpBlockedError(4, "blocked"), timedelta(minutes=15), id="error-4"),
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
