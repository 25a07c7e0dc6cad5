"""Case 6 (TLS): no setting or environment variable silently turns certificate checks off.

Every way a user might try — connection extras, empty CA-bundle variables, Python's own
switch — either fails loudly naming the setting, before any request, or still verifies
and refuses the self-signed server. The server counts requests that got through the
handshake; only the control (the certificate trusted explicitly) may reach it.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from datetime import date
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from devtools.reliability.harness import CaseFigures
from smsc_hook.client.exceptions import SmscConfigError, SmscTransportError
from smsc_hook.client.hook import SmscHook
from tests.test_hook import _FixedReply, _self_signed

CASE = "6 TLS"
pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]

CONN_ID = "smsc_tls_probe"
DAY = date(2026, 11, 1)


class _CountingReply(_FixedReply):
    served: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        type(self).served.append(self.path)
        super().do_POST()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CountingReply)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()


ATTEMPTS = [
    pytest.param({"verify": False}, {}, "'verify'", id="extra-verify-false"),
    pytest.param({"verify": "false"}, {}, "'verify'", id="extra-verify-string"),
    pytest.param({"verify": 0}, {}, "'verify'", id="extra-verify-zero"),
    pytest.param({"ca_bundle": ""}, {}, None, id="extra-empty-ca-bundle"),
    pytest.param({"verify_ssl": False, "insecure": True}, {}, None, id="unknown-extras"),
    pytest.param({"allow_http": True}, {}, None, id="allow-http-on-https"),
    pytest.param(
        {}, {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}, None, id="empty-ca-bundle-env"
    ),
    pytest.param({}, {"PYTHONHTTPSVERIFY": "0"}, None, id="pythonhttpsverify-0"),
]


@pytest.mark.parametrize(("extra", "env", "named"), ATTEMPTS)
def test_tls_verification_cannot_be_turned_off_silently(
    tls_server: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    case: CaseFigures,
    extra: dict[str, Any],
    env: dict[str, str],
    named: str | None,
):
    url, _ = tls_server
    case.case = f"6 TLS off? {json.dumps(extra or env)}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    conn = {"conn_type": "smsc", "host": url, "login": "demo", "password": "demo-password"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({**conn, "extra": extra}))
    _CountingReply.served.clear()
    hook = SmscHook(CONN_ID)
    expected: type[Exception] = SmscConfigError if named else SmscTransportError
    with pytest.raises(expected) as raised:
        hook.get_stat(DAY, DAY)
    if named:
        assert named in str(raised.value)
        case.figures = f"refused before any request: {raised.value}"[:120]
    else:
        assert "SSLError" in str(raised.value)
        case.figures = "still verified: certificate refused (SSLError), no data accepted"
    assert _CountingReply.served == [], "a request got through without verification"


def test_trusted_certificate_is_the_only_way_in(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, case: CaseFigures
):
    """The control: with the certificate in ``ca_bundle`` the same server answers."""
    url, cert = tls_server
    case.case = "6 TLS control: ca_bundle trusts the server"
    conn = {"conn_type": "smsc", "host": url, "login": "demo", "password": "demo-password"}
    extra = {"ca_bundle": str(cert)}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({**conn, "extra": extra}))
    _CountingReply.served.clear()
    rows = SmscHook(CONN_ID).get_stat(DAY, DAY)
    assert [row.login for row in rows] == ["demo"]
    assert len(_CountingReply.served) == 1
    case.calls = 1
    case.rows = len(rows)
    case.figures = "1 request served over verified TLS"
