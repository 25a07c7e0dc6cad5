"""What an alert says: pure functions from a failure (or a missed deadline) to its body.

The body carries no secret: the error text is cut to a bounded length and every secret
the caller knows (the SMSC password and its variants, the warehouse password) is replaced
by ``***`` before it is built.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_ERROR_CHARS = 2000
MASK = "***"

#: The fix per error class, from the README's troubleshooting table (first match wins,
#: by the class itself or any of its bases).
FIXES: dict[str, str] = {
    "SmscAuthError": (
        "SMSC rejected the login/password (or apikey), or the IP is not allowed in SMSC's "
        "settings. Fix the connection; not retried: 5 failures in 30 min block the IP, and "
        "after two the ledger refuses calls for the rest of the 30 min."
    ),
    "SmscIpBlockedError": (
        "SMSC blocked this IP (usually after auth failures, for 30 min). Fix the credentials; "
        "the ledger refuses calls until the block has passed."
    ),
    "SmscRateLimitedError": (
        "Something outside this pipeline calls get_stat with the same account (the ledger "
        "only knows our calls). Find it, then load the day again."
    ),
    "SmscDisputedReplyError": (
        "SMSC answered the day two different ways; nothing changed, both replies are in "
        "smsc.disputed_reply. Load the day again later (airflow backfill create ... "
        "--reprocess-behavior completed)."
    ),
    "SmscReconciliationError": (
        "SMSC's month total and its days disagree even after a re-fetch; the numbers per "
        "login are in smsc.reconciliation. Ask SMSC support."
    ),
    "SmscGapsError": "Fill the gaps: python -m smsc_hook.gaps (see README, Only the gaps).",
    "SmscReplyValueError": (
        "SMSC sent a value that cannot be real; nothing was stored. Capture the reply with "
        "python -m smsc_hook.probe and attach the fixtures to a bug report."
    ),
    "SmscReplyError": (
        "SMSC's reply was not a statistics reply (HTML, truncated). Check the host and any "
        "proxy in front of it."
    ),
    "SmscTransportError": (
        "The host (or something in front of it) did not answer properly: check the host and "
        "any proxy; raise max_reply_bytes / deadline only for a real, slow or large reply."
    ),
    "AirflowTaskTimeout": (
        "The task ran past its execution_timeout: look at the task log for the last wait "
        "(a rate-limit slot, a slow reply)."
    ),
}
#: For configuration errors the message names what is wrong; these add the command.
CONFIG_FIXES: tuple[tuple[str, str], ...] = (
    ("schema is behind", "Run the bootstrap: python -m smsc_hook.bootstrap."),
    ("pool", "Check airflow pools list; run the bootstrap: python -m smsc_hook.bootstrap."),
)
CONFIG_FIX = "Fix the configuration the message names (connection or SMSC_* variable)."


@dataclass(frozen=True)
class Alert:
    """One alert: the JSON body of the webhook, and the e-mail's content."""

    kind: str  # task_failed | not_loaded_by_deadline
    summary: str
    dag_id: str
    run_id: str
    run_type: str
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    account: str | None = None
    days: list[str] = field(default_factory=list)
    error_class: str | None = None
    error: str | None = None
    fix: str | None = None
    deadline: str | None = None
    log_url: str | None = None

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        return {"source": "smsc_hook", **asdict(self)}

    def subject(self) -> str:
        return f"[SMSC] {self.summary}"

    def text(self) -> str:
        """Plain text, one ``field: value`` a line."""
        lines = [self.summary, ""]
        for key, value in self.payload().items():
            if key in ("summary", "source") or value in (None, [], ""):
                continue
            lines.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
        return "\n".join(lines)

    def html(self) -> str:
        """The e-mail body: the text, escaped, in a ``<pre>``."""
        return f"<pre>{html.escape(self.text())}</pre>"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (longest first) masked, then cut to a bounded length."""
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS] + " …"
    return text


def fix_for(exception: BaseException | None) -> str | None:
    """The known fix for an error, by its class (or a base class), else None."""
    if exception is None:
        return None
    names = [cls.__name__ for cls in type(exception).__mro__]
    for name in names:
        if name in FIXES:
            return FIXES[name]
    if "SmscConfigError" in names:
        message = str(exception)
        return next((fix for needle, fix in CONFIG_FIXES if needle in message), CONFIG_FIX)
    return None


def failure_alert(
    *,
    dag_id: str,
    run_id: str,
    run_type: str,
    task_id: str,
    map_index: int | None,
    try_number: int | None,
    account: str | None,
    days: Sequence[str],
    exception: BaseException | str | None,
    secrets: Iterable[str] = (),
    log_url: str | None = None,
) -> Alert:
    """The alert for a task try that failed and will not be retried."""
    secrets = list(secrets)
    error_class: str | None = None
    error: str | None = redact(str(exception), secrets) if exception else None
    fix: str | None = None
    if isinstance(exception, BaseException):
        error_class, fix = type(exception).__name__, fix_for(exception)
    where = f"{task_id}[{map_index}]" if map_index is not None and map_index >= 0 else task_id
    day_text = f" {days[0]}" if len(days) == 1 else f" {days[0]}..{days[-1]}" if days else ""
    return Alert(
        kind="task_failed",
        summary=f"{dag_id} {where}{day_text} failed: {error_class or 'error'} (not retried)",
        dag_id=dag_id,
        run_id=run_id,
        run_type=run_type,
        task_id=task_id,
        map_index=map_index if map_index is not None and map_index >= 0 else None,
        try_number=try_number,
        account=account,
        days=list(days),
        error_class=error_class,
        error=error,
        fix=fix,
        log_url=log_url,
    )


def deadline_alert_message(
    *, dag_run: Mapping[str, Any], account: str | None, day: str, deadline: str
) -> Alert:
    """The alert for a day not in the warehouse by its deadline."""
    dag_id = str(dag_run.get("dag_id", ""))
    return Alert(
        kind="not_loaded_by_deadline",
        summary=f"{dag_id}: {day} not loaded by {deadline}",
        dag_id=dag_id,
        run_id=str(dag_run.get("dag_run_id") or dag_run.get("run_id") or ""),
        run_type=str(dag_run.get("run_type", "")),
        account=account,
        days=[day],
        deadline=deadline,
        fix=(
            "Look at the run's failed or waiting task (the task alert says why); once fixed, "
            f"load the day: airflow backfill create --dag-id {dag_id} --from-date {day} "
            f"--to-date {day} --reprocess-behavior completed"
        ),
    )
