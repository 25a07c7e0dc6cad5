"""Delivering an alert: a JSON POST to a webhook, an e-mail through the SMTP provider.

Each channel is tried on its own and never raises: an alert that cannot be delivered is
logged (naming the channel, never the webhook's URL, which may hold a token) and counted
in ``smsc.alerts_failed``; the task's own outcome is not changed by it.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from smsc_hook.alerts.config import AlertSettings
from smsc_hook.alerts.message import Alert
from smsc_hook.observability import metrics

log = logging.getLogger(__name__)
#: A webhook's answer is read no further than this (it is only logged by its status).
MAX_ANSWER_BYTES = 64 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not an instruction: an alert goes only where configured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post_webhook(alert: Alert, url: str, timeout: float) -> None:
    """POST the alert's JSON; raises on a refused connection or a non-2xx status."""
    body = json.dumps(alert.payload(), ensure_ascii=False).encode()
    request = urllib.request.Request(  # noqa: S310  (the scheme is checked in AlertSettings)
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(_NoRedirects)
    with opener.open(request, timeout=timeout) as answer:
        answer.read(MAX_ANSWER_BYTES)
        if not 200 <= answer.status < 300:
            raise urllib.error.HTTPError(url, answer.status, "not 2xx", answer.headers, None)


def send_email(alert: Alert, settings: AlertSettings, context: Any) -> None:
    """Send through the SMTP provider's notifier and the ``smtp_conn_id`` connection."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    notifier = SmtpNotifier(
        to=list(settings.email_to),
        from_email=settings.email_from,
        subject=alert.subject(),
        html_content=alert.html(),
        smtp_conn_id=settings.smtp_conn_id,
    )
    # notify(), not __call__: the body is ours, already escaped, and must not be rendered
    # as a Jinja template (an error message may contain braces).
    notifier.notify(context)


def deliver(alert: Alert, settings: AlertSettings, context: Any = None) -> list[str]:
    """Hand ``alert`` to every configured channel; returns the channels that took it."""
    delivered = []
    if settings.webhook_url:
        host = urlsplit(settings.webhook_url).hostname
        try:
            post_webhook(alert, settings.webhook_url, settings.webhook_timeout)
        except Exception as exc:
            log.error("SMSC alert: webhook on %s failed: %s", host, type(exc).__name__)
            metrics.alert(alert.kind, "webhook", sent=False)
        else:
            log.info("SMSC alert sent to the webhook on %s: %s", host, alert.summary)
            metrics.alert(alert.kind, "webhook", sent=True)
            delivered.append("webhook")
    if settings.email_to:
        try:
            send_email(alert, settings, context if context is not None else {})
        except Exception as exc:
            log.error("SMSC alert: e-mail through %s failed: %s", settings.smtp_conn_id, exc)
            metrics.alert(alert.kind, "email", sent=False)
        else:
            log.info("SMSC alert e-mailed to %d address(es): %s", len(settings.email_to),
                     alert.summary)  # fmt: skip
            metrics.alert(alert.kind, "email", sent=True)
            delivered.append("email")
    return delivered
