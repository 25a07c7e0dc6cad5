"""Tests for SmscHook against the SMSC simulator over real HTTP: data, errors, failover, secrets."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import logging
import re
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Iterator, MutableMapping
from contextlib import ExitStack, suppress
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from zoneinfo import ZoneInfo

import certifi
import pytest
import requests
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devtools.reliability.thirdparty import (
    RecordingServer,
    form_fields,
    http_reply,
    recording_server,
)
from devtools.simulator_process import RunningSimulator, running_simulator
from smsc_hook.client.exceptions import (
    SmscAuthError,
    SmscFatalError,
    SmscIpBlockedError,
    SmscParametersError,
    SmscRateLimitedError,
    SmscReplyError,
    SmscRetryableError,
    SmscTransportError,
    SmscUnknownApiError,
)
from smsc_hook.client.hook import SmscHook
from tests.conftest import SIM_TODAY

CONN_ID = "smsc_test"
CONN_ENV = "AIRFLOW_CONN_SMSC_TEST"
DAY = SIM_TODAY - timedelta(days=1)
MONTH = (date(2026, 10, 1), DAY)
DEMO_PASSWORD = "demo-password"
# The "echo" account has subclients named like its secrets, so a reply carries them.
ECHO_PASSWORD = "echo-secret-pw"
ECHO_APIKEY = "echo-secret-key"
ACCOUNTS = [
    {
        "login": "demo",
        "password": DEMO_PASSWORD,
        "apikey": "demo-apikey",
        "subclients": ["demo-shop", "demo-news"],
        "currency": "RUB",
    },
    {"login": "acme", "password": "acme-password", "subclients": ["acme-eu"], "currency": "KZT"},
    {
        "login": "echo",
        "password": ECHO_PASSWORD,
        "apikey": ECHO_APIKEY,
        "subclients": [ECHO_PASSWORD, ECHO_APIKEY],
        "currency": "RUB",
    },
]


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_simulator(tmp_path_factory) -> Iterator[RunningSimulator]:
    """One simulator for the module, with a high rate limit so tests can call freely."""
    accounts = tmp_path_factory.mktemp("simulator") / "accounts.json"
    accounts.write_text(json.dumps(ACCOUNTS), encoding="utf-8")
    args = ("--quiet", "--today", SIM_TODAY.isoformat(), "--rate-limit", "1000")
    with running_simulator(*args, "--accounts", str(accounts)) as sim:
        yield sim


@pytest.fixture
def sim(shared_simulator: RunningSimulator) -> RunningSimulator:
    """The shared simulator with no faults, limits, blocks or logged requests left over."""
    shared_simulator.control.reset()
    return shared_simulator


@pytest.fixture
def connect(monkeypatch):
    """Build an SmscHook on a connection defined through ``AIRFLOW_CONN_SMSC_TEST``."""

    def connect(host, *, login="demo", password=DEMO_PASSWORD, pacer=None, **extra) -> SmscHook:
        conn = {"conn_type": "smsc", "host": host, "login": login, "password": password}
        monkeypatch.setenv(CONN_ENV, json.dumps({**conn, "extra": extra}))
        return SmscHook(CONN_ID, pacer=pacer)

    return connect


@pytest.fixture
def closed_urls() -> Iterator[list[str]]:
    """Three loopback URLs whose ports are bound but not listening: connections are refused."""
    with ExitStack() as stack:
        urls = []
        for _ in range(3):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            urls.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
        yield urls


@pytest.fixture
def logs(caplog) -> Iterator[list[MutableMapping[str, Any]]]:
    """Hook log entries (structlog) while the test runs; stdlib logs go to caplog at DEBUG."""
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as entries:
        yield entries


def as_dicts(rows) -> list[dict]:
    """StatRows in the shape ``SimulatorControl.truth`` returns."""
    return [dataclasses.asdict(row) for row in rows]


def other_name(url: str) -> str:
    """The same simulator under another host name, so failover would show up in its log."""
    return url.replace("127.0.0.1", "localhost")


def error_texts(exc: BaseException) -> str:
    """Everything a log or UI could show of an exception, its causes and contexts included."""
    texts = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), *traceback.format_exception(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


@dataclasses.dataclass
class Attempt:
    """One reserved call as a pacer saw it, and every outcome it was told."""

    start: date
    end: date
    base_url: str
    outcomes: list[tuple[str, int | None]] = dataclasses.field(default_factory=list)

    def finish(self, outcome: str, error_code: int | None = None) -> None:
        self.outcomes.append((outcome, error_code))


class RecordingPacer:
    """A CallPacer that grants every call and remembers it."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    def reserve(self, start: date, end: date, base_url: str) -> Attempt:
        attempt = Attempt(start, end, base_url)
        self.attempts.append(attempt)
        return attempt


class RefusingPacer:
    """A CallPacer that never grants a call, like a full ledger would."""

    def reserve(self, start: date, end: date, base_url: str) -> Attempt:
        raise RuntimeError("no slot")


# --- data matches the simulator's ground truth -------------------------------------------------


def test_one_day_matches_truth(sim, connect):
    """A one-day window returns exactly the simulator's rows for that day."""
    rows = connect(sim.url).get_stat(DAY, DAY)
    assert as_dicts(rows) == sim.control.truth("demo", DAY, DAY)


def test_range_matches_truth(sim, connect):
    """A month returns the month's totals per login, subclients included."""
    expected = sim.control.truth("demo", *MONTH)
    assert len(expected) == 3
    assert as_dicts(connect(sim.url).get_stat(*MONTH)) == expected


def test_omitted_end_runs_to_the_servers_today(sim, connect):
    """Without ``end`` no end is sent, and the server answers up to its today."""
    start = date(2026, 11, 1)
    rows = connect(sim.url).get_stat(start)
    assert as_dicts(rows) == sim.control.truth("demo", start, SIM_TODAY)
    assert "end" not in sim.control.requests()[0]["body_params"]


@pytest.mark.parametrize("fmt", [0, 1, 2, 3], ids=["text", "comma", "xml", "json"])
def test_every_format_matches_truth(sim, connect, fmt):
    """Each reply format gives the same rows."""
    rows = connect(sim.url, fmt=fmt).get_stat(*MONTH)
    assert as_dicts(rows) == sim.control.truth("demo", *MONTH)
    assert sim.control.requests()[0]["body_params"]["fmt"] == str(fmt)


@pytest.mark.parametrize(
    ("mycur", "balance2", "currency"),
    [
        pytest.param(True, False, "KZT", id="own-currency-main"),
        pytest.param(False, False, "RUR", id="roubles-main"),
        pytest.param(True, True, "KZT", id="own-currency-balance2"),
        pytest.param(False, True, "RUR", id="roubles-balance2"),
    ],
)
def test_currency_and_balance_options(sim, connect, mycur, balance2, currency):
    """``mycur`` and ``balance2`` reach the server and select the matching series."""
    hook = connect(sim.url, login="acme", password="acme-password", mycur=mycur, balance2=balance2)
    expected = sim.control.truth("acme", *MONTH, balance2=balance2, mycur=mycur)
    if (mycur, balance2) != (True, False):
        assert expected != sim.control.truth("acme", *MONTH)  # the option changes the answer
    rows = hook.get_stat(*MONTH)
    assert as_dicts(rows) == expected
    assert {row.currency for row in rows} == {currency}
    sent = sim.control.requests()[0]["body_params"]
    assert (sent.get("mycur"), sent.get("balance2")) == (
        "1" if mycur else None,
        "1" if balance2 else None,
    )


def test_apikey_authenticates_instead_of_password(sim, connect):
    """With extra apikey only the apikey is sent, and it opens the account."""
    rows = connect(sim.url, password=None, apikey="demo-apikey").get_stat(DAY, DAY)
    assert as_dicts(rows) == sim.control.truth("demo", DAY, DAY)
    sent = sim.control.requests()[0]["body_params"]
    assert sent["apikey"] == "***"
    assert "psw" not in sent
    assert "login" not in sent


def test_request_is_a_post_with_a_form_body(sim, connect):
    """Every parameter, credentials included, travels in a urlencoded POST body."""
    connect(sim.url).get_stat(DAY, DAY)
    [request] = sim.control.requests()
    assert request["method"] == "POST"
    assert request["path"] == "/sys/get.php"
    assert request["url_params"] == {}
    assert request["secret_in_url"] is False
    assert request["body_params"] == {
        "get_stat": "1",
        "start": "09.11.2026",
        "end": "09.11.2026",
        "fmt": "3",
        "charset": "utf-8",
        "login": "demo",
        "psw": "***",
        "mycur": "1",
    }


def test_real_rate_limit_refuses_the_fourth_call(simulator, connect):
    """Against real limits (3 a minute) three calls pass and the fourth is error 9."""
    hook = connect(simulator.url)
    for _ in range(3):
        hook.get_stat(DAY, DAY)
    with pytest.raises(SmscRateLimitedError) as error:
        hook.get_stat(DAY, DAY)
    assert error.value.code == 9
    assert [r["outcome"] for r in simulator.control.requests()] == ["ok"] * 3 + ["error"]


# --- API errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_type", "least_wait"),
    [
        pytest.param(1, SmscParametersError, None, id="parameters"),
        pytest.param(2, SmscAuthError, None, id="auth-failed"),
        pytest.param(4, SmscIpBlockedError, timedelta(minutes=10), id="ip-blocked"),
        pytest.param(9, SmscRateLimitedError, timedelta(seconds=60), id="rate-limited"),
        pytest.param(77, SmscUnknownApiError, None, id="unknown-code"),
    ],
)
def test_api_error_raises_typed_error_without_failover(sim, connect, code, error_type, least_wait):
    """An error reply raises its own type with the code; the reserve host is not tried."""
    sim.control.set_faults([{"kind": "error", "code": code, "count": 1}])
    hook = connect(sim.url, reserve_hosts=[other_name(sim.url)])
    with pytest.raises(error_type) as error:
        hook.get_stat(DAY, DAY)
    assert error.value.code == code
    if least_wait is None:
        assert isinstance(error.value, SmscFatalError)
        assert not isinstance(error.value, SmscRetryableError)
    else:
        assert isinstance(error.value, SmscRetryableError)
        assert error.value.retry_after >= least_wait
    assert len(sim.control.requests()) == 1


@pytest.mark.parametrize("fmt", [0, 1, 2, 3], ids=["text", "comma", "xml", "json"])
def test_api_error_is_read_in_every_format(sim, connect, fmt):
    """The error reply of each format becomes the same typed error."""
    sim.control.set_faults([{"kind": "error", "code": 9, "count": 1}])
    with pytest.raises(SmscRateLimitedError) as error:
        connect(sim.url, fmt=fmt).get_stat(DAY, DAY)
    assert error.value.code == 9


def test_wrong_password_is_an_auth_error_that_hides_it(sim, connect, logs, caplog):
    """The server's own auth refusal is error 2, sent once, with the password nowhere."""
    hook = connect(sim.url, password="wrong-secret-pw", reserve_hosts=[other_name(sim.url)])
    with pytest.raises(SmscAuthError) as error:
        hook.get_stat(DAY, DAY)
    assert error.value.code == 2
    assert len(sim.control.requests()) == 1
    assert "wrong-secret-pw" not in error_texts(error.value)
    assert "wrong-secret-pw" not in repr(logs) + caplog.text


# --- transport faults and failover -----------------------------------------------------------

TRANSPORT = SmscTransportError
#: Read timeout for calls that must succeed: no busy machine takes this long on loopback.
GENEROUS = 10.0
#: Read timeout for a call the test wants to time out (the simulator stalls far longer).
FIRES = 0.3


@pytest.mark.parametrize(
    ("fault", "error_type", "message"),
    [
        pytest.param({"kind": "timeout", "seconds": 2}, TRANSPORT, "timed out", id="timeout"),
        pytest.param({"kind": "reset"}, TRANSPORT, "ConnectionError", id="reset"),
        pytest.param({"kind": "http", "status": 500}, TRANSPORT, "HTTP 500", id="http-500"),
        pytest.param({"kind": "http", "status": 502}, TRANSPORT, "HTTP 502", id="http-502"),
        pytest.param({"kind": "html"}, SmscReplyError, "HTML", id="html-page"),
        pytest.param({"kind": "truncated"}, SmscReplyError, "JSON truncated", id="truncated"),
    ],
)
def test_transport_fault_raises_retryable_error(sim, connect, fault, error_type, message):
    """Network, proxy and garbled-reply faults raise retryable errors that say what happened."""
    sim.control.set_faults([{**fault, "count": 1}])
    # Only the timeout fault needs a short timeout; the others must fail for their own reason.
    timeout = FIRES if fault["kind"] == "timeout" else GENEROUS
    with pytest.raises(error_type, match=message) as error:
        connect(sim.url, timeout=timeout).get_stat(DAY, DAY)
    assert isinstance(error.value, SmscRetryableError)
    if error_type is TRANSPORT:
        assert sim.url in str(error.value)
    assert len(sim.control.requests()) == 1


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"kind": "timeout", "seconds": 30}, id="timeout"),
        pytest.param({"kind": "reset"}, id="reset"),
        pytest.param({"kind": "http", "status": 502}, id="http-502"),
    ],
)
def test_transport_fault_falls_over_to_reserve_host(sim, connect, logs, fault):
    """After a transport fault on the primary the reserve host answers, with a warning."""
    sim.control.set_faults([{**fault, "count": 1}])
    reserve = other_name(sim.url)
    # One timeout serves both hosts, and the reserve's answer must arrive within it. For the
    # timeout fault it must also fire well before the simulator's 30 s stall ends (so the
    # primary's failure is a client timeout): 3 s, still ample for a loopback answer.
    timeout = 3.0 if fault["kind"] == "timeout" else GENEROUS
    reply = connect(sim.url, timeout=timeout, reserve_hosts=[reserve]).fetch_stat(DAY, DAY)
    assert as_dicts(reply.rows) == sim.control.truth("demo", DAY, DAY)
    assert reply.base_url == reserve
    assert [r["outcome"] for r in sim.control.requests()] == ["fault", "ok"]
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert sim.url in warnings[0]
    if fault["kind"] == "timeout":
        assert "timed out" in warnings[0], warnings[0]


def test_closed_primary_falls_over_to_reserve_host(sim, connect, closed_urls, logs):
    """A refused connection on the primary moves on to the reserve host and warns."""
    reply = connect(closed_urls[0], reserve_hosts=[sim.url]).fetch_stat(DAY, DAY)
    assert as_dicts(reply.rows) == sim.control.truth("demo", DAY, DAY)
    assert reply.base_url == sim.url
    assert len(sim.control.requests()) == 1
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert closed_urls[0] in warnings[0]


def test_all_hosts_failing_names_every_host(connect, closed_urls):
    """When no host answers the error is a transport error listing each host tried."""
    hook = connect(closed_urls[0], reserve_hosts=closed_urls[1:])
    with pytest.raises(SmscTransportError, match="all SMSC hosts failed") as error:
        hook.get_stat(DAY, DAY)
    for url in closed_urls:
        assert url in str(error.value)


def test_transport_error_does_not_carry_the_request(connect, closed_urls):
    """The requests exception holds the form body (password included): it is not chained."""
    hook = connect(closed_urls[0])
    with pytest.raises(SmscTransportError) as error:
        hook.get_stat(DAY, DAY)
    chain = [error.value, *_chain(error.value)]
    assert not any(isinstance(exc, requests.RequestException) for exc in chain), chain


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current = exc.__cause__ or exc.__context__
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


# --- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "auth"),
    [
        pytest.param(ECHO_PASSWORD, {"password": ECHO_PASSWORD}, id="password"),
        pytest.param(ECHO_APIKEY, {"password": None, "apikey": ECHO_APIKEY}, id="apikey"),
    ],
)
def test_raw_reply_has_secrets_redacted(sim, connect, secret, auth):
    """A secret echoed by the server is masked in ``raw``; the parsed rows are untouched."""
    assert secret in [r["login"] for r in sim.control.truth("echo", *MONTH)]
    reply = connect(sim.url, login="echo", **auth).fetch_stat(*MONTH)
    assert secret in [row.login for row in reply.rows]
    assert secret.encode() not in reply.raw
    assert b'"login": "***"' in reply.raw


def test_password_is_nowhere_across_outcomes(sim, connect, closed_urls, logs, caplog):
    """Success, failover, API error and transport error leave no password in any output."""
    hook = connect(closed_urls[0], login="echo", password=ECHO_PASSWORD, reserve_hosts=[sim.url])
    reply = hook.fetch_stat(*MONTH)
    errors = []
    for fault in ({"kind": "error", "code": 2}, {"kind": "reset"}, {"kind": "truncated"}):
        sim.control.set_faults([{**fault, "count": 1}])
        with pytest.raises((SmscAuthError, SmscTransportError, SmscReplyError)) as error:
            hook.fetch_stat(*MONTH)
        errors.append(error.value)
    assert len(logs) >= 2  # a failover warning and an info line at least
    assert ECHO_PASSWORD not in repr(logs) + caplog.text
    assert ECHO_PASSWORD.encode() not in reply.raw
    for error_value in errors:
        assert ECHO_PASSWORD not in error_texts(error_value)
    requests_log = sim.control.requests()
    assert len(requests_log) == 4
    assert not any(r["secret_in_url"] for r in requests_log)
    assert all(r["method"] == "POST" for r in requests_log)
    assert ECHO_PASSWORD not in json.dumps(requests_log)
    assert ECHO_PASSWORD not in repr(hook.settings)


# --- pacing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "closed_primary", "outcomes"),
    [
        pytest.param([], False, [("sim", [("ok", None)])], id="ok"),
        pytest.param(
            [{"kind": "error", "code": 9}], False, [("sim", [("api_error", 9)])], id="api-error"
        ),
        pytest.param([{"kind": "html"}], False, [("sim", [("bad_reply", None)])], id="bad-reply"),
        pytest.param(
            [{"kind": "http", "status": 503}],
            False,
            [("sim", [("transport_error", None)])],
            id="transport-error",
        ),
        pytest.param(
            [],
            True,
            [("closed", [("transport_error", None)]), ("sim", [("ok", None)])],
            id="failover",
        ),
    ],
)
def test_pacer_reserves_each_attempt_and_hears_its_outcome(
    sim, connect, closed_urls, faults, closed_primary, outcomes
):
    """Each HTTP attempt is reserved once, for the window and host, and finished once."""
    sim.control.set_faults([{**f, "count": 1} for f in faults])
    pacer = RecordingPacer()
    hosts = [closed_urls[0], sim.url] if closed_primary else [sim.url]
    hook = connect(hosts[0], reserve_hosts=hosts[1:], pacer=pacer)
    with suppress(SmscRateLimitedError, SmscReplyError, SmscTransportError):
        hook.get_stat(*MONTH)
    names = {closed_urls[0]: "closed", sim.url: "sim"}
    assert [(names[a.base_url], a.outcomes) for a in pacer.attempts] == outcomes
    assert all((a.start, a.end) == MONTH for a in pacer.attempts)
    assert len(sim.control.requests()) == sum(name == "sim" for name, _ in outcomes)


def test_pacer_refusal_stops_the_request(sim, connect):
    """When the pacer grants no slot nothing is sent."""
    with pytest.raises(RuntimeError, match="no slot"):
        connect(sim.url, pacer=RefusingPacer()).get_stat(DAY, DAY)
    assert sim.control.requests() == []


def test_end_before_start_fails_before_any_request(sim, connect):
    """A reversed window is a ValueError raised before pacing or HTTP."""
    pacer = RecordingPacer()
    with pytest.raises(ValueError, match="before start"):
        connect(sim.url, pacer=pacer).get_stat(DAY, DAY - timedelta(days=1))
    assert pacer.attempts == []
    assert sim.control.requests() == []


# --- Airflow's test_connection --------------------------------------------------------------


@pytest.fixture
def no_warehouse(monkeypatch, closed_urls):
    """The warehouse connection points at a port nobody listens on."""
    port = closed_urls[0].rsplit(":", 1)[1]
    monkeypatch.delenv("SMSC_WAREHOUSE_CONN_ID", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SMSC_WAREHOUSE", f"postgres://postgres@127.0.0.1:{port}/x")


@pytest.mark.usefixtures("no_warehouse")
def test_test_connection_reports_success_and_failure(sim, connect):
    """The UI's connection test says yes for good credentials and no, without the secret,
    else; with no warehouse it says the call was not paced."""
    ok, message = connect(sim.url).test_connection()
    assert ok is True
    assert re.match(r"SMSC answered with [1-9][0-9]* row\(s\) \(not paced: ", message), message
    assert "'smsc_warehouse' is not reachable" in message
    ok, message = connect(sim.url, password="wrong-secret-pw").test_connection()
    assert ok is False
    assert "error 2" in message
    assert "wrong-secret-pw" not in message


@pytest.mark.parametrize("conn_id", ["smsc_warehouse", "other_warehouse"])
def test_test_connection_goes_through_the_ledger(sim, connect, warehouse_url, monkeypatch, conn_id):
    """With the warehouse reachable, the button's call is a ledger row (caller test_connection)."""
    from sqlalchemy import create_engine, text

    from smsc_hook.warehouse.migrations import apply_migrations

    apply_migrations(warehouse_url)
    if conn_id != "smsc_warehouse":
        monkeypatch.setenv("SMSC_WAREHOUSE_CONN_ID", conn_id)
    airflow_uri = warehouse_url.replace("postgresql+psycopg2://", "postgres://", 1)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", airflow_uri)
    ok, message = connect(sim.url).test_connection()
    assert ok is True, message
    assert f"paced: recorded in the ledger of warehouse connection {conn_id!r}" in message
    engine = create_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT account, caller, outcome, window_start, window_end FROM smsc.api_calls"
                )
            ).all()
    finally:
        engine.dispose()
    [(account, caller, outcome, start, end)] = rows
    assert (account, caller, outcome) == ("demo", "test_connection", "ok")
    assert start == end


# --- TLS ---------------------------------------------------------------------------------------

TLS_REPLY = b'[{"login": "demo", "cnt": 1, "credit": "2.50", "debit": "0.00", "currency": "RUB"}]'


class _FixedReply(BaseHTTPRequestHandler):
    """Answers every POST with one fixed row: the TLS tests are about the handshake only."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(TLS_REPLY)))
        self.end_headers()
        self.wfile.write(TLS_REPLY)

    def log_message(self, format, *args) -> None:
        pass


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server with a self-signed certificate: its URL and the certificate file."""
    cert_path, key_path = _self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FixedReply)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert_path
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def env_ca_bundle(monkeypatch) -> None:
    """A process-wide CA bundle as many images set, which requests prefers over session.verify."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())


@pytest.mark.usefixtures("env_ca_bundle")
def test_ca_bundle_extra_trusts_a_private_certificate(tls_server, connect):
    """extra ca_bundle is used for verification even when REQUESTS_CA_BUNDLE is set."""
    url, cert_path = tls_server
    rows = connect(url, ca_bundle=str(cert_path), timeout=5).get_stat(DAY, DAY)
    assert [row.login for row in rows] == ["demo"]


@pytest.mark.usefixtures("env_ca_bundle")
def test_unknown_certificate_is_refused(tls_server, connect):
    """Without a matching CA the self-signed certificate fails verification: no plain fallback."""
    url, _ = tls_server
    with pytest.raises(SmscTransportError, match="SSLError"):
        connect(url, timeout=5).get_stat(DAY, DAY)


# --- hostile servers: redirects, size, time, proxies -----------------------------------------


@pytest.fixture
def third_party() -> Iterator[RecordingServer]:
    """A server the configured host should never lead the hook to; it records what arrives."""
    with recording_server() as server:
        yield server


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_a_transport_fault_and_is_not_followed(sim, connect, third_party, status):
    """Any 3xx names status and target host; nothing reaches the target; one attempt."""
    sim.control.set_faults(
        [{"kind": "redirect", "status": status, "location": third_party.url, "count": 1}]
    )
    pacer = RecordingPacer()
    with pytest.raises(SmscTransportError, match=f"HTTP {status} redirect") as error:
        connect(sim.url, pacer=pacer).get_stat(DAY, DAY)
    assert "'127.0.0.1'" in str(error.value)
    assert third_party.received == []
    assert [a.outcomes for a in pacer.attempts] == [[("transport_error", None)]]
    assert len(sim.control.requests()) == 1


def test_redirect_loop_costs_one_request_per_host(sim, connect):
    """A redirect to itself is not followed: one POST, one ledger attempt, then the reserve."""
    sim.control.set_faults([{"kind": "redirect", "count": 1}])
    pacer = RecordingPacer()
    reply = connect(sim.url, pacer=pacer, reserve_hosts=[other_name(sim.url)]).fetch_stat(DAY, DAY)
    assert reply.base_url == other_name(sim.url)
    assert [a.outcomes for a in pacer.attempts] == [[("transport_error", None)], [("ok", None)]]
    assert [r["outcome"] for r in sim.control.requests()] == ["fault", "ok"]


@pytest.mark.parametrize(
    ("fault", "extra", "message"),
    [
        pytest.param(
            {"kind": "bomb", "size": 400 * 2**20}, {}, "larger than max_reply_bytes", id="gzip-bomb"
        ),
        pytest.param(
            {"kind": "huge", "size": 200 * 2**20}, {}, "Content-Length 209715200", id="huge"
        ),
        pytest.param({"kind": "endless"}, {}, "larger than max_reply_bytes", id="endless-chunked"),
        pytest.param(
            {"kind": "huge", "size": 5000},
            {"max_reply_bytes": 4096},
            "max_reply_bytes=4096",
            id="cap-is-an-extra",
        ),
        pytest.param(
            {"kind": "drip", "seconds": 0.5},
            {"timeout": 2, "deadline": 2},
            "within the 2 s deadline",
            id="body-drip",
        ),
        pytest.param(
            {"kind": "drip", "seconds": 0.5, "value": "headers"},
            {"timeout": 2, "deadline": 2},
            "within the 2 s deadline",
            id="header-drip",
        ),
    ],
)
def test_oversized_or_slow_reply_is_cut_off(sim, connect, fault, extra, message):
    """Size caps count decoded bytes; the deadline covers the whole exchange, drip or not."""
    sim.control.set_faults([{**fault, "count": 1}])
    pacer = RecordingPacer()
    began = time.monotonic()
    with pytest.raises(SmscTransportError, match=message):
        connect(sim.url, pacer=pacer, **extra).get_stat(DAY, DAY)
    assert time.monotonic() - began < 10
    assert [a.outcomes for a in pacer.attempts] == [[("transport_error", None)]]


def test_reply_under_the_cap_is_read(sim, connect):
    """A body just under max_reply_bytes is read whole (and here parses to no rows)."""
    sim.control.set_faults([{"kind": "huge", "size": 4000, "count": 1}])
    assert connect(sim.url, max_reply_bytes=4096).get_stat(DAY, DAY) == []


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_plain_http_base_url_never_uses_an_environment_proxy(
    sim, connect, third_party, monkeypatch, variable
):
    """A proxy from the environment would see the password in clear: not for plain http."""
    monkeypatch.setenv(variable, third_party.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    rows = connect(sim.url).get_stat(DAY, DAY)
    assert as_dicts(rows) == sim.control.truth("demo", DAY, DAY)
    assert third_party.received == []


def test_https_base_url_still_uses_the_environment_proxy(connect, third_party, monkeypatch):
    """HTTPS_PROXY stays usable for the real hosts: the tunnel is asked of the proxy."""
    monkeypatch.setenv("HTTPS_PROXY", third_party.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(SmscTransportError):
        connect("https://smsc.example", reserve_hosts=[], timeout=5).get_stat(DAY, DAY)
    [request] = third_party.received
    assert request.startswith(b"CONNECT smsc.example:443 ")
    assert third_party.secret_bytes(DEMO_PASSWORD) == 0


# --- hostile servers: charset and secrets in hand-made replies ----------------------------------


@pytest.fixture
def fixed() -> Iterator[RecordingServer]:
    """A server answering every request with the reply a test sets."""
    with recording_server() as server:
        yield server


CYRILLIC_AUTH = "ERROR = 2 (неверный логин или пароль)"
CYRILLIC_ROW = '[{"login": "магазин", "cnt": 1, "credit": "1", "debit": "0", "currency": "RUB"}]'


@pytest.mark.parametrize(
    ("fmt", "body", "content_type", "error_type"),
    [
        pytest.param(
            0, CYRILLIC_AUTH.encode("cp1251"), "text/plain", SmscAuthError, id="text-1251"
        ),
        pytest.param(0, CYRILLIC_AUTH.encode("koi8-r"), "text/plain", SmscAuthError, id="koi8-r"),
        pytest.param(
            0,
            CYRILLIC_AUTH.encode("cp1251"),
            "text/plain; charset=utf-8",
            SmscAuthError,
            id="1251-labelled-utf-8",
        ),
        pytest.param(
            3,
            '{"error": "ошибка авторизации", "error_code": 2}'.encode("cp1251"),
            "application/json",
            SmscAuthError,
            id="json-1251",
        ),
        pytest.param(
            0,
            "ERROR = 4 (IP заблокирован)".encode("cp1251"),
            "text/plain; charset=windows-1251",
            SmscIpBlockedError,
            id="error-4-declared-1251",
        ),
        pytest.param(
            3,
            CYRILLIC_ROW.encode("cp1251"),
            "application/json",
            SmscReplyError,
            id="rows-in-undeclared-1251-are-not-guessed",
        ),
    ],
)
def test_error_reply_in_smscs_default_charsets_keeps_its_type(
    fixed, connect, fmt, body, content_type, error_type
):
    """Error 2 in windows-1251 or koi8-r stays an auth error (never retried); rows in a
    charset nobody declared are still refused rather than stored as mojibake."""
    fixed.set_answer(http_reply(body, content_type))
    with pytest.raises(error_type):
        connect(fixed.url, fmt=fmt).get_stat(DAY, DAY)


def test_rows_in_a_declared_charset_are_read(fixed, connect):
    """A reply that says it is windows-1251 is read as windows-1251."""
    fixed.set_answer(
        http_reply(CYRILLIC_ROW.encode("cp1251"), "application/json; charset=windows-1251")
    )
    [got] = connect(fixed.url).get_stat(DAY, DAY)
    assert got.login == "магазин"


CLIP_PASSWORD = "Qz7/Jk+9Wv2"  # 11 characters, none of its trigrams in any traceback


def _longest_shared(text: str, secret: str) -> int:
    return max(
        (n for n in range(1, len(secret) + 1) for i in range(len(secret) - n + 1)
         if secret[i : i + n] in text),
        default=0,
    )  # fmt: skip


@pytest.mark.parametrize("lead", range(22, 36), ids=lambda n: f"lead-{n}")
def test_secret_at_the_excerpt_clip_is_masked_first(fixed, connect, lead):
    """Wherever the parser's 40-character excerpt cuts the password, none of it shows."""
    code = "x" * lead + CLIP_PASSWORD
    fixed.set_answer(http_reply(json.dumps({"error": "e", "error_code": code}).encode()))
    with pytest.raises(SmscReplyError) as error:
        connect(fixed.url, password=CLIP_PASSWORD).get_stat(DAY, DAY)
    assert _longest_shared(error_texts(error.value), CLIP_PASSWORD) <= 2


def test_error_attributes_and_context_hold_no_secret(fixed, connect):
    """``description`` is masked like the message, and no exception (or body) is chained."""
    body = json.dumps({"error": f"bad password {CLIP_PASSWORD}", "error_code": 2}).encode()
    fixed.set_answer(http_reply(body))
    with pytest.raises(SmscAuthError) as error:
        connect(fixed.url, password=CLIP_PASSWORD).get_stat(DAY, DAY)
    assert CLIP_PASSWORD not in error.value.description
    assert "***" in error.value.description
    assert error.value.__context__ is None
    assert error.value.__cause__ is None
    assert CLIP_PASSWORD not in error_texts(error.value)


@pytest.mark.parametrize(
    "spelled",
    [
        pytest.param(json.dumps(CLIP_PASSWORD).replace("/", "\\/"), id="json-escaped-slash"),
        pytest.param(json.dumps(CLIP_PASSWORD), id="json-plain"),
        pytest.param(f'"{quote(CLIP_PASSWORD, safe="")}"', id="url-encoded"),
        pytest.param(
            '"' + re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), quote_plus(CLIP_PASSWORD)) + '"',
            id="url-encoded-lower-hex",
        ),
        pytest.param(
            json.dumps(CLIP_PASSWORD, ensure_ascii=True).replace("+", "\\u002b"), id="u-escape"
        ),
    ],
)
def test_raw_archive_redacts_every_spelling_of_a_secret(fixed, connect, spelled):
    """A secret echoed JSON-escaped or URL-encoded is masked in ``raw`` like a plain one."""
    row = f'[{{"login": {spelled}, "cnt": 1, "credit": "1", "debit": "0", "currency": "RUB"}}]'
    fixed.set_answer(http_reply(row.encode()))
    reply = connect(fixed.url, password=CLIP_PASSWORD).fetch_stat(DAY, DAY)
    for form in (spelled.strip('"'), CLIP_PASSWORD, quote(CLIP_PASSWORD, safe="")):
        assert form.encode() not in reply.raw
    assert b"***" in reply.raw


def test_password_md5_sends_only_the_hash(sim, connect, fixed):
    """With password_md5 psw is the lowercase MD5 hex; the simulator accepts it like SMSC."""
    rows = connect(sim.url, password_md5=True).get_stat(DAY, DAY)
    assert as_dicts(rows) == sim.control.truth("demo", DAY, DAY)
    fixed.set_answer(http_reply(TLS_REPLY))
    connect(fixed.url, password_md5=True).get_stat(DAY, DAY)
    [request] = fixed.received
    assert (
        form_fields(request)["psw"]
        == hashlib.md5(DEMO_PASSWORD.encode(), usedforsecurity=False).hexdigest()
    )
    assert DEMO_PASSWORD.encode() not in request


def test_open_ended_window_records_the_window_asked_for(sim, connect):
    """fetch_stat(start) sends no end and records start..today (Moscow), not start..start."""
    start = date(2026, 11, 1)
    pacer = RecordingPacer()
    reply = connect(sim.url, pacer=pacer).fetch_stat(start)
    moscow_today = datetime.now(ZoneInfo("Europe/Moscow")).date()
    assert (reply.start, reply.end) == (start, max(start, moscow_today))
    assert [(a.start, a.end) for a in pacer.attempts] == [(start, max(start, moscow_today))]
