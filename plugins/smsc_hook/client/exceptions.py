"""Typed SMSC errors: the class says whether to retry and how long to wait first."""

from __future__ import annotations

from datetime import timedelta


class SmscError(Exception):
    """Base of every error this package raises about SMSC."""


class SmscFatalError(SmscError):
    """Retrying cannot help: a bug, bad input, bad credentials or bad configuration."""


class SmscRetryableError(SmscError):
    """A later attempt may succeed; ``retry_after`` is the least wait before it."""

    retry_after: timedelta = timedelta(seconds=20)
    #: Whether repeated failures should back off exponentially from ``retry_after``.
    backoff: bool = True


class SmscConfigError(SmscFatalError):
    """The connection or pipeline configuration is wrong; found before any API call."""


class SmscApiError(SmscError):
    """An error reply from the API itself (HTTP 200 with an error code in the body)."""

    def __init__(self, code: int, description: str) -> None:
        self.code = code
        self.description = description
        super().__init__(f"SMSC error {code}: {description}")


class SmscParametersError(SmscApiError, SmscFatalError):
    """Error 1: the request parameters are wrong (our bug or bad input)."""


class SmscAuthError(SmscApiError, SmscFatalError):
    """Error 2: bad login/password or IP not allowed. Never retry: 5 in 30 min block the IP."""


class SmscIpBlockedError(SmscApiError, SmscRetryableError):
    """Error 4: the caller's IP is blocked for a while (30 min after 5 auth errors)."""

    #: SMSC's FAQ: 5 auth errors in 30 min block the IP for 30 min; a minute more, so the
    #: retry lands after the block, not on its last second (which would extend it).
    retry_after = timedelta(minutes=31)
    backoff = False


class SmscRateLimitedError(SmscApiError, SmscRetryableError):
    """Error 9: too many requests; the per-minute window must clear first."""

    retry_after = timedelta(seconds=65)
    backoff = False


class SmscUnknownApiError(SmscApiError, SmscFatalError):
    """An error code this client does not know; kept so a human can look it up."""


class SmscNotResellerError(SmscApiError, SmscConfigError):
    """``users.php?get_stat`` answered an error other than 2, 4 or 9: the account is not a
    reseller (or has no subclients of the kind asked for). Configuration, not a fault:
    every retry would get the same answer, so the task fails after this one call."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(code, description)
        self.args = (
            f"SMSC error {code} from users.php?get_stat ({description}): subclient "
            "statistics are served to reseller accounts only, so this account is not one, or "
            "has no subclients of the kind asked for (option 'reseller'). Turn 'subclients' "
            "off for it in SMSC_ACCOUNTS, or have SMSC enable subclients for the account",
        )


class SmscReplyError(SmscRetryableError):
    """The reply is not a well-formed statistics reply (truncated, HTML, bad fields)."""


class SmscReplyValueError(SmscReplyError, SmscFatalError):
    """A well-formed reply holds a row value that cannot be real (a 3 000-character login,
    an amount of 1e200000, a missing field): SMSC would send the same again, so it is not
    retried (each retry would spend an API call), and nothing of the reply is stored."""


class SmscTransportError(SmscRetryableError):
    """The request did not get an API answer: timeout, reset, non-200 status."""


_API_ERRORS: dict[int, type[SmscApiError]] = {
    1: SmscParametersError,
    2: SmscAuthError,
    4: SmscIpBlockedError,
    9: SmscRateLimitedError,
}


#: Codes that mean the same on ``users.php`` as on ``get.php``: parameters (documented for
#: both; a bad parameter is our request's fault, not the account's), credentials, IP block,
#: rate.
_SHARED_API_ERRORS = frozenset({1, 2, 4, 9})


def api_error(code: int, description: str) -> SmscApiError:
    """Build the typed error for an SMSC error code."""
    return _API_ERRORS.get(code, SmscUnknownApiError)(code, description)


def subclients_api_error(code: int, description: str) -> SmscApiError:
    """The typed error for a ``users.php?get_stat`` error code.

    1, 2, 4 and 9 mean what they mean for ``get_stat``. Which code a non-reseller gets is not
    documented (the subclient pages list 1-10), so every other code is the configuration
    error :class:`SmscNotResellerError`: fatal, with the fix in its message.
    """
    if code in _SHARED_API_ERRORS:
        return api_error(code, description)
    return SmscNotResellerError(code, description)


class SmscDisputedReplyError(SmscFatalError):
    """A re-fetch would remove stored logins and a second fetch of the day disagrees.

    Both replies are archived in ``smsc.disputed_reply``; the stored rows are untouched.
    Not retried: every retry would spend two calls on a day SMSC answers inconsistently.
    """
