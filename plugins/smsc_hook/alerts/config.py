"""Alert settings from ``SMSC_ALERT_*`` / ``SMSC_DEADLINE`` (read at parse time, no I/O)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from urllib.parse import urlsplit

from smsc_hook.client.exceptions import SmscConfigError

EMAIL_TO = "SMSC_ALERT_EMAIL_TO"
EMAIL_FROM = "SMSC_ALERT_EMAIL_FROM"
SMTP_CONN_ID = "SMSC_ALERT_SMTP_CONN_ID"
WEBHOOK_URL = "SMSC_ALERT_WEBHOOK_URL"
WEBHOOK_TIMEOUT = "SMSC_ALERT_WEBHOOK_TIMEOUT_SECONDS"
DEADLINE = "SMSC_DEADLINE"
DEFAULT_SMTP_CONN_ID = "smtp_default"
DEFAULT_WEBHOOK_TIMEOUT = 10.0


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go; every channel is off unless its variable is set."""

    email_to: tuple[str, ...] = ()
    email_from: str | None = None
    smtp_conn_id: str = DEFAULT_SMTP_CONN_ID
    #: May hold a token: kept out of repr (and so out of any log of the settings).
    webhook_url: str | None = field(default=None, repr=False)
    webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    #: Local time (the account's zone) on the day after D by which D must be loaded.
    deadline: time | None = None

    @property
    def enabled(self) -> bool:
        """Whether any channel is configured."""
        return bool(self.email_to or self.webhook_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertSettings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(name, "").strip()

        email_to = tuple(a.strip() for a in get(EMAIL_TO).replace(";", ",").split(",") if a.strip())
        for address in email_to:
            if "@" not in address or " " in address:
                raise SmscConfigError(f"{EMAIL_TO}: {address!r} is not an e-mail address")
        webhook = get(WEBHOOK_URL) or None
        if webhook is not None:
            parts = urlsplit(webhook)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                # The URL may hold a token: name the variable, not the value.
                raise SmscConfigError(f"{WEBHOOK_URL} must be an http(s) URL with a host")
        timeout = DEFAULT_WEBHOOK_TIMEOUT
        if get(WEBHOOK_TIMEOUT):
            try:
                timeout = float(get(WEBHOOK_TIMEOUT))
            except ValueError:
                timeout = -1.0
            if not 0 < timeout <= 120:
                raise SmscConfigError(
                    f"{WEBHOOK_TIMEOUT} must be seconds in (0, 120], got {get(WEBHOOK_TIMEOUT)!r}"
                )
        deadline = None
        if get(DEADLINE):
            try:
                deadline = time.fromisoformat(get(DEADLINE))
            except ValueError:
                raise SmscConfigError(
                    f"{DEADLINE} must be HH:MM (local time the day after), got {get(DEADLINE)!r}"
                ) from None
        return cls(
            email_to=email_to,
            email_from=get(EMAIL_FROM) or None,
            smtp_conn_id=get(SMTP_CONN_ID) or DEFAULT_SMTP_CONN_ID,
            webhook_url=webhook,
            webhook_timeout=timeout,
            deadline=deadline,
        )
