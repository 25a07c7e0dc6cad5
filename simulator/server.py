"""The simulator's HTTP side: ``/sys/get.php`` and ``/sys/users.php?get_stat`` with the real
server's rules (one rate budget for both), and ``/_control/``."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import socket
import socketserver
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from simulator.config import Account, SimulatorConfig, check_dialect
from simulator.faults import HOSTILE, FaultQueue, FaultSpec, serve_hostile
from simulator.replies import (
    CHARSETS,
    DEFAULT_CHARSET,
    FORMATS,
    NOT_RESELLER,
    content_type,
    dialect_rows,
    encode,
    error_text,
    success_text,
)
from simulator.truth import (
    Override,
    OverrideKey,
    Row,
    moscow_today,
    subclient_id,
    subclient_rows,
    window_rows,
)

API_PATH = "/sys/get.php"
#: SMSC's subclient API; only ``get_stat=1`` is served (other commands: error 1).
USERS_PATH = "/sys/users.php"
API_PATHS = (API_PATH, USERS_PATH)
CONTROL_PREFIX = "/_control/"
SECRET_PARAMS = frozenset({"psw", "apikey", "password"})
MASK = "***"
#: Real-server limits on authorisation errors, before ``time_scale``.
AUTH_FAILURE_LIMIT = 5
AUTH_WINDOW = 30 * 60.0
AUTH_BLOCK = 30 * 60.0
_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_HTML_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class ParamsError(Exception):
    """The request parameters are wrong: SMSC error 1."""


def mask(params: dict[str, str]) -> dict[str, str]:
    """Params safe to log: secrets replaced, so the log never holds a password."""
    return {k: MASK if k.lower() in SECRET_PARAMS else v for k, v in params.items()}


def parse_smsc_date(value: str) -> date:
    """A ``dd.mm.yyyy`` date as SMSC takes it; ``ParamsError`` otherwise."""
    match = _DATE.fullmatch(value.strip())
    if not match:
        raise ParamsError(f"bad date {value!r}")
    day, month, year = (int(g) for g in match.groups())
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise ParamsError(f"bad date {value!r}") from exc


def _flag(params: dict[str, str], name: str) -> bool:
    value = params.get(name, "")
    if value not in ("", "0", "1"):
        raise ParamsError(f"bad {name} {value!r}")
    return value == "1"


def _fmt(params: dict[str, str]) -> int | None:
    """The requested format, or None when it is not one SMSC knows."""
    raw = params.get("fmt", "").strip()
    if raw == "":
        return 0
    return int(raw) if raw.isdigit() and int(raw) in FORMATS else None


def _charset(params: dict[str, str]) -> str:
    value = params.get("charset", "").strip().lower()
    return value if value in CHARSETS else DEFAULT_CHARSET


def _decode_params(raw: str) -> dict[str, str]:
    """Form/query params; values decoded in the request's ``charset`` as SMSC does.

    Percent-escapes are first read byte for byte (latin-1) because the charset that
    gives them meaning is itself one of the params.
    """
    pairs = parse_qsl(raw, keep_blank_values=True, encoding="latin-1")
    charset = _charset(dict(pairs))
    return {
        k.encode("latin-1").decode(charset, "replace"): v.encode("latin-1").decode(
            charset, "replace"
        )
        for k, v in pairs
    }


@dataclass
class Reply:
    """What to send back, and what the log should say about it."""

    status: int
    body: bytes
    content_type: str
    outcome: dict[str, Any] = field(default_factory=dict)
    account: str | None = None


class SimulatorState:
    """Everything that changes while the server runs; every method is thread-safe."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.faults = FaultQueue(config.faults)
        self._lock = threading.Lock()
        self._overrides: dict[OverrideKey, Override] = {}
        self._log: deque[dict[str, Any]] = deque(maxlen=100_000)
        self._hits: dict[str, deque[float]] = {}
        self._auth_failures: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}

    # -- time ---------------------------------------------------------------
    def today(self) -> date:
        """The simulator's "today": configured, else the Moscow date."""
        return self.config.today or moscow_today()

    def _scaled(self, seconds: float) -> float:
        return seconds * self.config.time_scale

    # -- request log --------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        """Keep a log entry and print it as one JSON line (unless quiet)."""
        with self._lock:
            self._log.append(entry)
        if not self.config.quiet:
            # A parent that stopped reading stdout must not break the server.
            with contextlib.suppress(OSError, ValueError):
                print(json.dumps(entry), flush=True)

    def requests(self) -> list[dict[str, Any]]:
        """The request log, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._log.clear()

    # -- auth and limits -----------------------------------------------------
    def is_blocked(self, ip: str) -> bool:
        """Whether ``ip`` is serving an auth-error block (error 4)."""
        with self._lock:
            until = self._blocked_until.get(ip)
            return until is not None and time.monotonic() < until

    def auth_failed(self, ip: str) -> None:
        """Count an auth error; the fifth within the window blocks the IP."""
        now = time.monotonic()
        with self._lock:
            fails = self._auth_failures.setdefault(ip, deque())
            while fails and fails[0] <= now - self._scaled(AUTH_WINDOW):
                fails.popleft()
            fails.append(now)
            if len(fails) >= AUTH_FAILURE_LIMIT:
                self._blocked_until[ip] = now + self._scaled(AUTH_BLOCK)
                fails.clear()

    def authenticate(self, params: dict[str, str]) -> Account | None:
        """The account the credentials open, or None."""
        apikey = params.get("apikey", "")
        login, psw = params.get("login", ""), params.get("psw", "")
        for acc in self.config.accounts:
            if apikey:
                if acc.apikey and hmac.compare_digest(apikey.encode(), acc.apikey.encode()):
                    return acc
            elif login == acc.login and psw:
                # SMSC takes the password or the lowercase MD5 hex of it.
                md5 = hashlib.md5(acc.password.encode(), usedforsecurity=False).hexdigest()
                ok = hmac.compare_digest(psw.encode(), acc.password.encode()) or (
                    hmac.compare_digest(psw.encode(), md5.encode())
                )
                return acc if ok else None
        return None

    def admit(self, account: str) -> bool:
        """Count a get_stat request; False when it breaks the rolling rate limit."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(account, deque())
            while hits and hits[0] <= now - self._scaled(self.config.rate_window):
                hits.popleft()
            # Rejected requests count too: a client that hammers stays blocked.
            hits.append(now)
            return len(hits) <= self.config.rate_limit

    # -- truth ----------------------------------------------------------------
    def revise(self, key: OverrideKey, revision: Override) -> None:
        """Change a day's figures for every later reply."""
        with self._lock:
            self._overrides[key] = revision

    def rows(self, account: str, start: date, end: date, balance2: bool, mycur: bool) -> list[Row]:
        """What get_stat reports for the window right now (in the configured dialect)."""
        with self._lock:
            overrides = dict(self._overrides)
        rows = window_rows(
            self.config,
            account,
            start,
            end,
            balance2,
            mycur,
            today=self.today(),
            overrides=overrides,
        )
        return dialect_rows(rows, self.config.dialect)

    def subclient_rows(
        self,
        account: str,
        start: date,
        end: date,
        *,
        reseller: int,
        hide_deleted: bool,
        balance2: bool,
        mycur: bool,
        user: str | None = None,
    ) -> list[Row]:
        """What users.php?get_stat reports for the window right now (configured dialect)."""
        with self._lock:
            overrides = dict(self._overrides)
        rows = subclient_rows(
            self.config,
            account,
            start,
            end,
            reseller=reseller,
            hide_deleted=hide_deleted,
            balance2=balance2,
            mycur=mycur,
            user=user,
            today=self.today(),
            overrides=overrides,
        )
        return dialect_rows(rows, self.config.dialect)

    def reset(self) -> None:
        """Back to a fresh start: no limits, blocks, faults, log or revisions."""
        self.faults.clear()
        with self._lock:
            self._overrides.clear()
            self._log.clear()
            self._hits.clear()
            self._auth_failures.clear()
            self._blocked_until.clear()

    # -- the API --------------------------------------------------------------
    def answer(
        self, params: dict[str, str], ip: str, dry: bool = False, path: str = API_PATH
    ) -> Reply:
        """The reply to one get.php or users.php call; ``dry`` answers without counting.

        Both paths share one rate budget per account, as SMSC is assumed to count its
        statistics requests together.
        """
        fmt = _fmt(params)
        charset = _charset(params)
        fmt_for_errors = 0 if fmt is None else fmt

        def error(code: int, account: str | None = None) -> Reply:
            body = encode(error_text(code, fmt_for_errors), fmt_for_errors, charset)
            ctype = content_type(fmt_for_errors, charset)
            return Reply(200, body, ctype, {"outcome": "error", "error_code": code}, account)

        if self.is_blocked(ip):
            return error(4)
        if params.get("get_stat") != "1":
            return error(1)
        account = self.authenticate(params)
        if account is None:
            if not dry:
                self.auth_failed(ip)
            return error(2)
        if not dry and not self.admit(account.login):
            return error(9, account.login)
        if path == USERS_PATH and not account.is_reseller:
            return error(NOT_RESELLER, account.login)
        try:
            if fmt is None:
                raise ParamsError("bad fmt")
            if not params.get("start"):
                raise ParamsError("start is required")
            start = parse_smsc_date(params["start"])
            end = parse_smsc_date(params["end"]) if params.get("end") else None
            if end is not None and end < start:
                raise ParamsError("end before start")
            balance2, mycur = _flag(params, "balance2"), _flag(params, "mycur")
            if path == USERS_PATH:
                reseller, hide_deleted = _flag(params, "reseller"), _flag(params, "hide_deleted")
                user = params.get("user") or None
                if user is not None and user not in account.subclients:
                    raise ParamsError(f"no subclient {user!r}")
        except ParamsError:
            return error(1, account.login)
        last = end or max(start, self.today())
        if path == USERS_PATH:
            return self._subclients_reply(
                account, start, last, fmt, charset, int(reseller), hide_deleted, balance2,
                mycur, user,
            )  # fmt: skip
        rows = self.rows(account.login, start, last, balance2, mycur)
        if last > start and self.config.range_bias_cnt and rows:
            rows[0] = {**rows[0], "cnt": max(rows[0]["cnt"] + self.config.range_bias_cnt, 0)}
        body = encode(success_text(rows, fmt, charset, self.config.dialect), fmt, charset)
        outcome = {"outcome": "ok", "rows": len(rows)}
        return Reply(200, body, content_type(fmt, charset), outcome, account.login)

    def _subclients_reply(
        self,
        account: Account,
        start: date,
        last: date,
        fmt: int,
        charset: str,
        reseller: int,
        hide_deleted: bool,
        balance2: bool,
        mycur: bool,
        user: str | None,
    ) -> Reply:
        rows = self.subclient_rows(
            account.login,
            start,
            last,
            reseller=reseller,
            hide_deleted=hide_deleted,
            balance2=balance2,
            mycur=mycur,
            user=user,
        )
        seed = self.config.seed

        def extra(row: Row) -> dict[str, str]:
            # A column get.php rows lack: the parser must keep it out of the rows.
            return {"user_id": str(subclient_id(seed, account.login, row["login"]))}

        text = success_text(rows, fmt, charset, self.config.dialect, extra)
        outcome = {"outcome": "ok", "rows": len(rows)}
        return Reply(200, encode(text, fmt, charset), content_type(fmt, charset), outcome,
                     account.login)  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 so clients can keep sessions alive like with the real host."""

    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    server: SimulatorServer

    def version_string(self) -> str:
        """Look like the real host's front end, not like Python."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default access log would print query strings with passwords."""

    @property
    def state(self) -> SimulatorState:
        return self.server.state

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing -------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json; charset=utf-8")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self._read_body()
        if parts.path.startswith(CONTROL_PREFIX):
            self._control(method, parts.path[len(CONTROL_PREFIX) :], parts.query, body)
        else:
            self._api(method, parts.path, parts.query, body)

    # -- /sys/get.php -----------------------------------------------------------
    def _api(self, method: str, path: str, query: str, body: bytes) -> None:
        url_params = _decode_params(query)
        form = "application/x-www-form-urlencoded" in self.headers.get("Content-Type", "")
        body_params = _decode_params(body.decode("latin-1")) if method == "POST" and form else {}
        params = {**url_params, **body_params}
        entry: dict[str, Any] = {
            "time": time.time(),
            "method": method,
            "path": path,
            "client_ip": self.client_address[0],
            "url_params": mask(url_params),
            "body_params": mask(body_params),
            "secret_in_url": any(k.lower() in SECRET_PARAMS for k in url_params),
            "account": None,
            "start": params.get("start"),
            "end": params.get("end"),
            "fmt": params.get("fmt"),
        }
        if path not in API_PATHS or method not in ("GET", "POST"):
            self.state.record({**entry, "outcome": "not_found"})
            self._send(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
            return
        fault = self.state.faults.take()
        if fault is not None and fault.kind != "latency":
            self._fault(fault, params, entry)
            return
        if fault is not None:
            self.server.stopping.wait(fault.wait)
            entry["fault"] = "latency"
        reply = self.state.answer(params, self.client_address[0], path=path)
        self.state.record({**entry, "account": reply.account, **reply.outcome})
        self._send(reply.status, reply.body, reply.content_type)

    def _fault(self, fault: FaultSpec, params: dict[str, str], entry: dict[str, Any]) -> None:
        """Misbehave like a network, proxy or overloaded server would."""
        self.state.record({**entry, "outcome": "fault", "fault": fault.kind})
        path = str(entry["path"])
        if fault.kind in HOSTILE:
            honest = self.state.answer(params, self.client_address[0], dry=True, path=path)
            serve_hostile(
                self,
                fault,
                (honest.body, honest.content_type),
                self.server.stopping,
                fmt=_fmt(params) or 0,
                login=params.get("login") or "demo",
                api_path=path,
            )
        elif fault.kind == "timeout":
            self.server.stopping.wait(fault.wait)
            self.close_connection = True
        elif fault.kind == "reset":
            self._reset_connection()
        elif fault.kind == "http":
            status = fault.status or 500
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            page = f"<html><body><h1>{status} {phrase}</h1></body></html>\n"
            self._send(status, page.encode(), "text/html")
        elif fault.kind == "html":
            self._send(200, _HTML_PAGE.encode(), "text/html")
        elif fault.kind == "truncated":
            reply = self.state.answer(params, self.client_address[0], dry=True, path=path)
            self._send(reply.status, reply.body[: len(reply.body) // 2], reply.content_type)
        else:  # error
            fmt = _fmt(params) or 0
            charset = _charset(params)
            code = fault.code or 1
            self._send(200, encode(error_text(code, fmt), fmt, charset), content_type(fmt, charset))

    def _reset_connection(self) -> None:
        """Abort with RST: linger 0, then close the descriptor before anything sends a FIN."""
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        os.close(sock.detach())
        self.close_connection = True

    # -- /_control/ ---------------------------------------------------------------
    def _control(self, method: str, name: str, query: str, body: bytes) -> None:
        try:
            payload: Any = json.loads(body) if body.strip() else {}
            result = self._control_route(method, name, dict(parse_qsl(query)), payload)
        except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation) as exc:
            self._send_json(400, {"error": f"{type(exc).__name__}: {exc}"})
            return
        if result is None:
            self._send_json(404, {"error": f"no control endpoint {method} {name}"})
        else:
            self._send_json(200, result)

    def _control_route(self, method: str, name: str, query: dict[str, str], payload: Any) -> Any:
        state = self.state
        route = (method, name.rstrip("/"))
        if route == ("GET", "health"):
            return {"ok": True}
        if route == ("GET", "requests"):
            return state.requests()
        if route == ("DELETE", "requests"):
            state.clear_requests()
            return {"ok": True}
        if route == ("GET", "faults"):
            return {"faults": [f.to_json() for f in state.faults.snapshot()]}
        if route == ("POST", "faults"):
            state.faults.replace(FaultSpec.from_json(f) for f in payload.get("faults", []))
            return {"faults": [f.to_json() for f in state.faults.snapshot()]}
        if route == ("DELETE", "faults"):
            state.faults.clear()
            return {"faults": []}
        if route == ("GET", "config"):
            return self._config_json()
        if route == ("POST", "config"):
            self._configure(payload)
            return self._config_json()
        if route == ("POST", "reset"):
            state.reset()
            return {"ok": True}
        if route == ("POST", "revise"):
            self._revise(payload)
            return {"ok": True}
        if route == ("GET", "truth") and query.get("source") == "subclients":
            rows = state.subclient_rows(
                query["account"],
                date.fromisoformat(query["start"]),
                date.fromisoformat(query["end"]),
                reseller=int(query.get("reseller", "0") == "1"),
                hide_deleted=query.get("hide_deleted", "0") == "1",
                balance2=query.get("balance2", "0") == "1",
                mycur=query.get("mycur", "1") == "1",
            )
            return [{**r, "credit": str(r["credit"]), "debit": str(r["debit"])} for r in rows]
        if route == ("GET", "truth"):
            rows = state.rows(
                query["account"],
                date.fromisoformat(query["start"]),
                date.fromisoformat(query["end"]),
                balance2=query.get("balance2", "0") == "1",
                mycur=query.get("mycur", "1") == "1",
            )
            return [{**r, "credit": str(r["credit"]), "debit": str(r["debit"])} for r in rows]
        return None

    def _config_json(self) -> dict[str, Any]:
        cfg = self.state.config
        return {
            "time_scale": cfg.time_scale,
            "rate_limit": cfg.rate_limit,
            "rate_window": cfg.rate_window,
            "today": self.state.today().isoformat(),
            "today_fixed": cfg.today is not None,
            "seed": cfg.seed,
            "range_bias_cnt": cfg.range_bias_cnt,
            "dialect": cfg.dialect,
        }

    def _configure(self, payload: dict[str, Any]) -> None:
        unknown = set(payload) - {
            "time_scale",
            "rate_limit",
            "rate_window",
            "today",
            "range_bias_cnt",
            "dialect",
        }
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        cfg = self.state.config
        # Validate everything before changing anything, so a bad request changes nothing.
        time_scale = float(payload.get("time_scale", cfg.time_scale))
        rate_limit = int(payload.get("rate_limit", cfg.rate_limit))
        rate_window = float(payload.get("rate_window", cfg.rate_window))
        today = payload.get("today", cfg.today.isoformat() if cfg.today else None)
        range_bias_cnt = int(payload.get("range_bias_cnt", cfg.range_bias_cnt))
        dialect = check_dialect(str(payload.get("dialect", cfg.dialect)))
        if time_scale <= 0 or rate_limit < 1 or rate_window <= 0:
            raise ValueError("time_scale and rate_window must be > 0, rate_limit >= 1")
        cfg.today = date.fromisoformat(today) if today else None
        cfg.time_scale, cfg.rate_limit, cfg.rate_window = time_scale, rate_limit, rate_window
        cfg.range_bias_cnt = range_bias_cnt
        cfg.dialect = dialect

    def _revise(self, payload: dict[str, Any]) -> None:
        account = self.state.config.account(str(payload["account"]))
        login = str(payload["login"])
        if login not in account.logins:
            raise ValueError(f"{login!r} is not a login of account {account.login!r}")

        def amount(name: str) -> Decimal | None:
            value = payload.get(name)
            return None if value is None else Decimal(str(value))

        revision = Override(
            absent=bool(payload.get("absent", False)),
            cnt=None if payload.get("cnt") is None else int(payload["cnt"]),
            credit=amount("credit"),
            debit=amount("debit"),
        )
        day = date.fromisoformat(str(payload["day"]))
        self.state.revise((account.login, login, day, bool(payload.get("balance2"))), revision)


class SimulatorServer(ThreadingHTTPServer):
    """A threaded HTTP server carrying the simulator state."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, config: SimulatorConfig) -> None:
        self.state = SimulatorState(config)
        #: Set on shutdown so stalled (latency/timeout) handlers give up at once.
        self.stopping = threading.Event()
        super().__init__((config.host, config.port), Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup, which can stall start-up."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    @property
    def base_url(self) -> str:
        """``http://host:port`` with the port actually bound."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        """Stop serving and release the port; safe to call from any non-serving thread."""
        self.stopping.set()
        self.shutdown()
        self.server_close()


def start_in_thread(config: SimulatorConfig) -> tuple[SimulatorServer, str]:
    """Serve in a daemon thread, for embedding; call ``server.stop()`` when done."""
    server = SimulatorServer(config)
    thread = threading.Thread(target=server.serve_forever, name="smsc-simulator", daemon=True)
    thread.start()
    return server, server.base_url
