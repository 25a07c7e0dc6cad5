"""Case 9 (hostile server): a broken or hostile server gets nothing and holds nothing.

Each row of issue 14's table, re-run against the simulator's hostile modes or a throwaway
local server, through ``SmscHook`` directly (no scheduler): every case runs in a process of
its own so its peak resident memory is its own, and a local "third party" (the redirect
target, the environment's proxy) counts the password bytes that reach it. Each row asserts
its bound: a typed SMSC error (or, for the proxy, success without the proxy), seconds, peak
memory growth, and 0 password bytes anywhere but the configured host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from devtools import postgres
from devtools.reliability.harness import CaseFigures
from devtools.reliability.thirdparty import RecordingServer, http_reply, recording_server
from devtools.simulator_process import RunningSimulator, running_simulator
from smsc_hook.warehouse.migrations import apply_migrations

CASE = "9 hostile server"
pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
CONN_ID = "smsc_hostile"
DAY = date(2026, 11, 9)
#: Peak memory may grow this much over the child's baseline: the 16 MiB cap, the body's
#: one copy into bytes and the parser's text.
MAX_GROWTH_MIB = 64.0
#: The account's password: 11 characters (the clip case puts it across the parser's
#: 40-character excerpt), a '/' that JSON may escape as '\/', a '+' that URL encoding
#: changes, and no three characters in a row that a traceback could hold by chance.
PASSWORD = CLIP_PASSWORD = "Qz7/Jk+9Wv2"


@dataclass(frozen=True)
class Hostile:
    """One row: how the server misbehaves, and what the hook must do about it."""

    name: str
    fault: dict[str, Any] | None = None  # a simulator fault
    reply: bytes | None = None  # else a fixed reply from a throwaway server
    extra: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # {"HTTP_PROXY": "third-party"}
    password: str = PASSWORD
    #: The typed outcome; "ok": rows accepted; "refused-before-storing": the parser refuses
    #: it (SmscReplyError) or, if it ever got past, the warehouse fails it fatally.
    outcome: str = "SmscTransportError"
    retry: str | None = None  # the retry policy's action, when it matters
    seconds: float = 10.0
    warehouse: bool = False
    host: str | None = None  # a connection host to use instead of the server's URL
    direct: str | None = None  # hand-built rows straight into the warehouse (no parser)


def _error_code_at_clip() -> bytes:
    code = "x" * 30 + CLIP_PASSWORD
    return http_reply(json.dumps({"error": "e", "error_code": code}).encode())


def _escaped_login() -> bytes:
    login = json.dumps(CLIP_PASSWORD).replace("/", "\\/")
    row = f'[{{"login": {login}, "cnt": 1, "credit": "1", "debit": "0", "currency": "RUB"}}]'
    return http_reply(row.encode())


CASES = [
    Hostile("redirect 307 to another host", {"kind": "redirect", "status": 307, "location": "TP"}),
    Hostile("redirect 308 to another host", {"kind": "redirect", "status": 308, "location": "TP"}),
    Hostile("redirect 302 to another host", {"kind": "redirect", "status": 302, "location": "TP"}),
    Hostile("redirect 303 to another host", {"kind": "redirect", "status": 303, "location": "TP"}),
    Hostile("redirect loop", {"kind": "redirect", "status": 307}),
    Hostile("gzip bomb 400 MiB", {"kind": "bomb", "size": 400 * 2**20}, seconds=15),
    Hostile("200 MiB reply", {"kind": "huge", "size": 200 * 2**20}, seconds=15),
    Hostile("endless chunked body", {"kind": "endless"}, seconds=15),
    Hostile(
        "body drip 1 byte/s, timeout 2 s, deadline 5 s",
        {"kind": "drip", "seconds": 1.0},
        extra={"timeout": 2, "deadline": 5},
        seconds=9,
    ),
    Hostile(
        "header drip 1 byte/s, timeout 2 s, deadline 5 s",
        {"kind": "drip", "seconds": 1.0, "value": "headers"},
        extra={"timeout": 2, "deadline": 5},
        seconds=9,
    ),
    Hostile("HTTP_PROXY set, plain-http loopback", None, env={"HTTP_PROXY": "TP"}, outcome="ok"),
    Hostile("ALL_PROXY set, plain-http loopback", None, env={"ALL_PROXY": "TP"}, outcome="ok"),
    Hostile(
        "3000-character login",
        {"kind": "hostile", "value": "long-login"},
        outcome="refused-before-storing",
        warehouse=True,
    ),
    Hostile(
        "3000-character login past the parser: warehouse",
        direct="long-login",
        outcome="accepted",
        retry="fail",
        warehouse=True,
    ),
    Hostile(
        "credit = 1e200000",
        {"kind": "hostile", "value": "huge-credit"},
        outcome="refused-before-storing",
        warehouse=True,
    ),
    Hostile(
        "credit = 1e200000 past the parser: warehouse",
        direct="huge-credit",
        outcome="accepted",
        retry="fail",
        warehouse=True,
    ),
    Hostile(
        "password at the 40-character clip",
        reply=_error_code_at_clip(),
        password=CLIP_PASSWORD,
        outcome="SmscReplyError",
    ),
    Hostile(
        "password JSON-escaped in the reply",
        reply=_escaped_login(),
        password=CLIP_PASSWORD,
        outcome="ok",
    ),
    Hostile(
        "ERROR = 2 in windows-1251",
        reply=http_reply("ERROR = 2 (неверный логин)".encode("cp1251"), "text/plain"),
        extra={"fmt": 0},
        outcome="SmscAuthError",
        retry="fail",
    ),
    Hostile(
        "ERROR = 2 in koi8-r",
        reply=http_reply("ERROR = 2 (неверный логин)".encode("koi8-r"), "text/plain"),
        extra={"fmt": 0},
        outcome="SmscAuthError",
        retry="fail",
    ),
    Hostile("host with #fragment", host="https://smsc.ru/#frag", outcome="SmscConfigError"),
    Hostile("port 99999", host="https://smsc.ru:99999", outcome="SmscConfigError"),
    Hostile("non-IDNA host", host="https://ex\u2024ample.com", outcome="SmscConfigError"),
]


@dataclass
class Rig:
    sim: RunningSimulator
    third_party: RecordingServer
    fixed: RecordingServer
    warehouse_url: str


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, pg_server_url: str) -> Iterator[Rig]:
    accounts = tmp_path_factory.mktemp("hostile") / "accounts.json"
    accounts.write_text(
        json.dumps([{"login": "demo", "password": PASSWORD, "currency": "RUB"}]), "utf-8"
    )
    with (
        running_simulator(
            "--quiet", "--today", "2026-11-10", "--rate-limit", "1000", "--accounts", str(accounts)
        ) as sim,
        recording_server() as third_party,
        recording_server() as fixed,
        postgres.throwaway_database(pg_server_url) as warehouse_url,
    ):
        apply_migrations(warehouse_url)
        yield Rig(sim, third_party, fixed, warehouse_url)


def _run_case(rig: Rig, case: Hostile) -> dict[str, Any]:
    """The case in a child process: its JSON result line."""
    tp_host = f"http://localhost:{rig.third_party.port}"  # another host name, same machine
    if case.fault is not None:
        fault = {**case.fault, "count": 1}
        if fault.get("location") == "TP":
            fault["location"] = tp_host
        rig.sim.control.set_faults([fault])
    if case.reply is not None:
        rig.fixed.set_answer(case.reply)
    host = case.host or (rig.fixed.url if case.reply is not None else rig.sim.url)
    conn = {"conn_type": "smsc", "host": host, "login": "demo", "password": case.password}
    env = {
        k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "NO_PROXY"
    }  # fmt: skip
    env.update({name: tp_host if value == "TP" else value for name, value in case.env.items()})
    env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {**conn, "extra": {"reserve_hosts": [], **case.extra}}
    )
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])
    spec = {
        "conn_id": CONN_ID,
        "password": case.password,
        "day": DAY.isoformat(),
        "warehouse_url": rig.warehouse_url if case.warehouse else None,
        "direct": case.direct,
    }
    done = subprocess.run(
        [sys.executable, "-m", "devtools.reliability.hostile", json.dumps(spec)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("hostile", CASES, ids=[c.name for c in CASES])
def test_hostile_server(rig: Rig, case: CaseFigures, hostile: Hostile) -> None:
    rig.sim.control.reset()
    rig.third_party.clear()
    rig.fixed.clear()
    case.case = f"9 hostile: {hostile.name}"
    result = _run_case(rig, hostile)
    leaked = rig.third_party.secret_bytes(hostile.password)
    growth = result["peak_mib"] - result["baseline_mib"]
    requests_log = [r for r in rig.sim.control.requests() if r["path"] == "/sys/get.php"]
    case.calls = len(requests_log) + len(rig.fixed.received)
    case.rows = result["rows"]
    case.figures = (
        f"{result['outcome']}"
        + (f" (retry: {result['retry']})" if result["retry"] else "")
        + f"; {result['seconds']:.1f} s; peak {result['peak_mib']:.0f} MiB"
        f" (+{growth:.1f} over the process's {result['baseline_mib']:.0f}); "
        f"{leaked} password bytes to third parties; "
        f"longest piece of the password in the error: {result['message_secret_chars']} chars; "
        f"password in the archive: {result['archive_secret_hits']}x"
        + (f"; {result['stored']} rows stored" if result["stored"] is not None else "")
    )
    print(case.figures, "|", result["message"])
    if hostile.outcome == "ok":
        assert result["outcome"].startswith("accepted"), result
    elif hostile.outcome == "refused-before-storing":
        assert result["outcome"] == "SmscReplyError" or result["retry"] == "fail", result
    elif hostile.outcome == "accepted":
        assert result["outcome"].startswith("accepted")
        assert "warehouse" in result["outcome"]
    else:
        assert result["outcome"] == hostile.outcome, result
    if hostile.retry:
        assert result["retry"] == hostile.retry, result
    if hostile.warehouse:
        assert result["stored"] in (None, 0), result  # nothing kept from a refused reply
    assert result["seconds"] < hostile.seconds, result
    assert growth < MAX_GROWTH_MIB, result
    assert leaked == 0
    assert rig.third_party.received == [] or all(
        b"psw" not in data for data in rig.third_party.received
    )
    assert result["message_secret_chars"] <= 2, result
    assert result["archive_secret_hits"] == 0, result
    if hostile.fault is not None and hostile.fault["kind"] == "redirect":
        assert len(requests_log) == 1  # one POST, not a chain
        assert rig.third_party.received == []
