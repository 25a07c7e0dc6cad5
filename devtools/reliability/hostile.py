"""One hostile-server case in a process of its own, so its memory high-water mark is its own.

``python -m devtools.reliability.hostile '<json>'`` calls ``SmscHook.fetch_stat`` once on
the connection named in the JSON (defined by the caller through ``AIRFLOW_CONN_*``), loads
accepted rows into the warehouse when asked, and prints one JSON line: the outcome, the
retry decision, seconds, resident memory (baseline after imports, and peak), and how much of
the password shows in the error texts and the raw archive.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from datetime import date
from pathlib import Path
from typing import Any

from simulator.faults import LONG_LOGIN


def memory_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def longest_shared(text: str, secret: str) -> int:
    """Length of the longest piece of ``secret`` that occurs in ``text``."""
    best = 0
    for start in range(len(secret)):
        for end in range(start + best + 1, len(secret) + 1):
            if secret[start:end] not in text:
                break
            best = end - start
    return best


def error_texts(exc: BaseException) -> str:
    texts = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), *traceback.format_exception(seen)]
        texts += [str(v) for v in vars(seen).values()]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from devtools.reliability.thirdparty import secret_count
    from smsc_hook.airflow.retry import SmscRetryPolicy
    from smsc_hook.client.exceptions import SmscError
    from smsc_hook.client.hook import SmscHook

    password: str = spec["password"]
    day = date.fromisoformat(spec["day"])
    baseline = memory_mib("VmRSS")
    began = time.monotonic()
    error: BaseException | None = None
    archive_hits = 0
    rows = 0
    stored = None
    try:
        if spec.get("direct"):
            reply = _direct_reply(spec["direct"], day)
        else:
            reply = SmscHook(spec["conn_id"]).fetch_stat(day, day)
    except SmscError as exc:
        error = exc
        outcome = type(exc).__name__
    else:
        rows = len(reply.rows)
        outcome = f"accepted {rows} row(s)"
        escaped = json.dumps(password)[1:-1].replace("/", "\\/")
        archive_hits = secret_count(reply.raw, password) + reply.raw.count(escaped.encode())
        if spec.get("warehouse_url"):
            outcome, error, stored = _load(spec["warehouse_url"], reply, day, outcome)
    seconds = time.monotonic() - began
    decision = SmscRetryPolicy().evaluate(error, 1, 9) if error is not None else None
    return {
        "outcome": outcome,
        "message": str(error)[:160] if error is not None else "",
        "retry": decision.action.name.lower() if decision is not None else "",
        "seconds": seconds,
        "baseline_mib": baseline,
        "peak_mib": memory_mib("VmHWM"),
        "rows": rows,
        "stored": stored,
        "message_secret_chars": longest_shared(error_texts(error), password) if error else 0,
        "archive_secret_hits": archive_hits,
    }


#: Rows the parser would refuse, built by hand: what the warehouse does if one got past it.
_DIRECT = {
    "long-login": {"login": LONG_LOGIN},
    "huge-credit": {"credit": "1e200000"},
}


def _direct_reply(name: str, day: date) -> Any:
    from decimal import Decimal

    from smsc_hook.client.hook import StatReply
    from smsc_hook.client.models import StatRow

    values: dict[str, Any] = {"login": "demo", "credit": "1.00", **_DIRECT[name]}
    row = StatRow(values["login"], 1, Decimal(values["credit"]), Decimal(0), "RUB")
    raw = json.dumps([{"login": row.login, "credit": values["credit"]}]).encode()
    return StatReply([row], raw, 3, "direct", day, day, 0.0)


def _load(url: str, reply: Any, day: date, outcome: str) -> tuple[str, Exception | None, int]:
    """Land the rows as the operator would; (outcome, the error, rows stored afterwards)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from smsc_hook.warehouse.engine import make_engine
    from smsc_hook.warehouse.writer import Warehouse

    engine = make_engine(url)
    error: Exception | None = None
    try:
        try:
            Warehouse(engine).load_day(
                account="demo",
                series="main",
                day=day,
                rows=reply.rows,
                raw_reply=reply.raw,
                reply_format=reply.fmt,
                removals_confirmed=False,
            )
            outcome += ", stored"
        except DBAPIError as exc:
            error = exc
            code = getattr(exc.orig, "pgcode", None)
            outcome += f" -> warehouse {type(exc).__name__} (SQLSTATE {code})"
        except Exception as exc:  # reported in the row, whatever it is
            error = exc
            outcome += f" -> warehouse refused it ({type(exc).__name__})"
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM smsc.raw_reply")).scalar_one()
            stored += conn.execute(text("SELECT count(*) FROM smsc.stat_day")).scalar_one()
    finally:
        engine.dispose()
    return outcome, error, int(stored)


def main(argv: list[str]) -> int:
    print(json.dumps(run(json.loads(argv[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
