"""Turn an Airflow ``smsc`` connection into validated request settings (pure, no I/O)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from smsc_hook.exceptions import SmscConfigError

DEFAULT_HOST = "smsc.ru"
SUPPORTED_FORMATS = (0, 1, 2, 3)
#: Longest accepted timeout; far larger values overflow the socket layer instead of waiting.
MAX_TIMEOUT = 3600.0
# Reserve hosts the official SMSC client libraries fall over to.
KNOWN_RESERVE_HOSTS: dict[str, tuple[str, ...]] = {
    "smsc.ru": ("www2.smsc.ru",),
    "smsc.kz": ("www2.smsc.kz",),
}


@dataclass(frozen=True)
class SmscSettings:
    """Everything a ``get_stat`` request needs, checked once before any call."""

    base_urls: tuple[str, ...]
    login: str | None
    password: str | None
    apikey: str | None
    fmt: int = 3
    mycur: bool = True
    balance2: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    ca_bundle: str | None = None
    account_name: str | None = None

    def __repr__(self) -> str:
        # Never let a secret reach a log line through repr().
        return (
            f"SmscSettings(base_urls={self.base_urls!r}, login={self.login!r}, "
            f"auth={'apikey' if self.apikey else 'password'}, fmt={self.fmt}, "
            f"mycur={self.mycur}, balance2={self.balance2})"
        )

    @property
    def account(self) -> str:
        """The name the warehouse and the pacing ledger key this account by."""
        return self.account_name or self.login or "apikey"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.apikey) if s)

    def auth_params(self) -> dict[str, str]:
        if self.apikey:
            return {"apikey": self.apikey}
        if self.login is None or self.password is None:
            raise SmscConfigError("SMSC connection needs a login and password, or extra 'apikey'")
        return {"login": self.login, "psw": self.password}


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def base_url(host: str, *, allow_http: bool = False) -> str:
    """``smsc.ru`` → ``https://smsc.ru``; a full URL is kept (plain http only for loopback)."""
    host = host.strip()
    if not host:
        raise SmscConfigError("connection host is empty")
    if "://" not in host:
        host = f"https://{host}"
    host = host.rstrip("/")
    parts = urlsplit(host)
    # Checked first: every later message quotes the host.
    if parts.username or parts.password or parts.query:
        raise SmscConfigError("connection host must not carry credentials or a query string")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SmscConfigError(f"connection host {host!r} is not a host name or http(s) URL")
    if parts.scheme == "http" and not (allow_http or _is_loopback(parts.hostname)):
        raise SmscConfigError(
            f"connection host {host!r} uses plain http, which would send the password in clear; "
            "use https, or set extra allow_http=true for a trusted network"
        )
    return host


def _flag(extra: Mapping[str, Any], name: str, default: bool) -> bool:
    value = extra.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str) and str(value).strip().lower() in ("0", "1", "true", "false"):
        return str(value).strip().lower() in ("1", "true")
    raise SmscConfigError(f"extra {name!r} must be true/false or 0/1, got {value!r}")


def _positive_number(extra: Mapping[str, Any], name: str, default: float) -> float:
    value = extra.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SmscConfigError(
            f"extra {name!r} must be a number of seconds, got {value!r}"
        ) from None
    if isinstance(value, bool) or not 0 < number <= MAX_TIMEOUT:
        raise SmscConfigError(f"extra {name!r} must be > 0 and <= {MAX_TIMEOUT:g}, got {value!r}")
    return number


def _reserve_hosts(extra: Mapping[str, Any], primary_url: str) -> tuple[str, ...]:
    value = extra.get("reserve_hosts")
    if value is None:
        # Keyed by the normalised URL, so "smsc.ru/" and "https://smsc.ru" get them too.
        return KNOWN_RESERVE_HOSTS.get(primary_url.lower().removeprefix("https://"), ())
    if isinstance(value, str):
        return tuple(h.strip() for h in value.split(",") if h.strip())
    if isinstance(value, list) and all(isinstance(h, str) for h in value):
        return tuple(h.strip() for h in value if h.strip())
    raise SmscConfigError(
        f"extra 'reserve_hosts' must be a list or comma-separated string, got {value!r}"
    )


def settings_from_connection(
    host: str | None,
    login: str | None,
    password: str | None,
    extra: str | Mapping[str, Any] | None,
) -> SmscSettings:
    """Validate an ``smsc`` connection; every error names the field that is wrong."""
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra.strip() else {}
        except json.JSONDecodeError as exc:
            raise SmscConfigError(f"connection extra is not valid JSON: {exc.msg}") from None
    if not isinstance(extra, Mapping | None):
        raise SmscConfigError("connection extra must be a JSON object")
    extra = dict(extra or {})

    apikey = extra.get("apikey") or None
    if apikey is not None and not isinstance(apikey, str):
        raise SmscConfigError("extra 'apikey' must be a string")
    if not apikey and not (login and password):
        raise SmscConfigError("connection needs login and password, or extra 'apikey'")
    account_name = extra.get("account") or None
    if apikey and not (account_name or login):
        raise SmscConfigError(
            "with extra 'apikey', set the login or extra 'account' to name the account"
        )

    fmt = extra.get("fmt", 3)
    # int() alone would turn true into 1 and 2.5 into 2.
    if isinstance(fmt, str) and fmt.strip().isdigit():
        fmt = int(fmt)
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt not in SUPPORTED_FORMATS:
        raise SmscConfigError(f"extra 'fmt' must be one of 0, 1, 2, 3, got {extra.get('fmt')!r}")

    ca_bundle = extra.get("ca_bundle")
    if "verify" in extra:
        raise SmscConfigError(
            "extra 'verify' is not supported: TLS verification stays on; "
            "point extra 'ca_bundle' at a CA file for a private certificate"
        )
    allow_http = _flag(extra, "allow_http", False)
    primary = base_url(host or DEFAULT_HOST, allow_http=allow_http)
    reserves = (base_url(h, allow_http=allow_http) for h in _reserve_hosts(extra, primary))
    return SmscSettings(
        base_urls=(primary, *reserves),
        login=login or None,
        password=password or None,
        apikey=apikey,
        fmt=fmt,
        mycur=_flag(extra, "mycur", True),
        balance2=_flag(extra, "balance2", False),
        connect_timeout=_positive_number(extra, "connect_timeout", 10.0),
        read_timeout=_positive_number(extra, "timeout", 60.0),
        ca_bundle=str(ca_bundle) if ca_bundle else None,
        account_name=str(account_name) if account_name else None,
    )
