"""Turn an Airflow ``smsc`` connection into validated request settings (pure, no I/O)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import idna

from smsc_hook.client.exceptions import SmscConfigError

DEFAULT_HOST = "smsc.ru"
SUPPORTED_FORMATS = (0, 1, 2, 3)
#: Longest accepted timeout; far larger values overflow the socket layer instead of waiting.
MAX_TIMEOUT = 3600.0
#: A whole attempt (connect, headers, body) ends after this many seconds, or after twice the
#: per-read ``timeout`` when that is longer: a server dripping bytes cannot hold the call.
DEFAULT_DEADLINE = 120.0
#: Largest decoded reply accepted. A year of daily rows for thousands of subclients is a few
#: MiB; anything near this is a broken or hostile server, not statistics.
DEFAULT_MAX_REPLY_BYTES = 16 * 1024 * 1024
_MIN_REPLY_BYTES = 1024
_MAX_REPLY_BYTES = 1024 * 1024 * 1024
# Reserve hosts per domain (SMSC's docs name www2 of .ru, smscentre.com and .kz; the
# official libraries fall over to www2 of their domain, .ua too).
KNOWN_RESERVE_HOSTS: dict[str, tuple[str, ...]] = {
    "smsc.ru": ("www2.smsc.ru",),
    "smscentre.com": ("www2.smscentre.com",),
    "smsc.kz": ("www2.smsc.kz",),
    "smsc.ua": ("www2.smsc.ua",),
}
#: A DNS label as resolvers take it (letters, digits, hyphens; underscores, which container
#: service names use); non-ASCII labels must pass IDNA instead.
_ASCII_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


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
    #: Seconds one attempt may take in all (connect, headers, body).
    deadline: float = DEFAULT_DEADLINE
    #: Largest reply body accepted, counted after decompression.
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    #: Send ``psw`` as the lowercase MD5 hex of the password (opt-in; see the README).
    password_md5: bool = False

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
        """Everything that opens the account: redacted from replies, errors and logs."""
        found = [s for s in (self.password, self.apikey) if s]
        if self.password and self.password_md5:
            found.append(_md5(self.password))  # as good as the password to SMSC
        return tuple(found)

    def auth_params(self) -> dict[str, str]:
        if self.apikey:
            return {"apikey": self.apikey}
        if self.login is None or self.password is None:
            raise SmscConfigError("SMSC connection needs a login and password, or extra 'apikey'")
        psw = _md5(self.password) if self.password_md5 else self.password
        return {"login": self.login, "psw": psw}


def _md5(password: str) -> str:
    # SMSC's own scheme ("password or its MD5 hash"), not a password hash for storage.
    return hashlib.md5(password.encode("utf-8"), usedforsecurity=False).hexdigest()


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _check_hostname(hostname: str, host: str, field: str) -> None:
    """A name DNS can look up, or an IP address; ``SmscConfigError`` naming ``field`` else."""
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        pass
    else:
        return
    name = hostname.removesuffix(".")
    if name.isascii() and all(_ASCII_LABEL.fullmatch(label) for label in name.split(".")):
        return
    if not name.isascii():
        try:
            idna.encode(name, uts46=True)
        except idna.IDNAError as exc:
            raise SmscConfigError(
                f"{field} {host!r}: host name is not valid IDNA ({exc})"
            ) from None
        return
    raise SmscConfigError(
        f"{field} {host!r}: host name may hold only letters, digits, '-' and '.' (or be valid IDNA)"
    )


def base_url(host: str, *, allow_http: bool = False, field: str = "connection host") -> str:
    """``smsc.ru`` → ``https://smsc.ru``; a full URL is kept (plain http only for loopback).

    :param field: what to call ``host`` in error messages (the form field or extra).
    """
    host = host.strip()
    if not host:
        raise SmscConfigError(f"{field} is empty")
    if "://" not in host:
        host = f"https://{host}"
    host = host.rstrip("/")
    parts = urlsplit(host)
    # Checked first: every later message quotes the host.
    if parts.username or parts.password or parts.query:
        raise SmscConfigError(f"{field} must not carry credentials or a query string")
    if parts.fragment or "#" in host:
        raise SmscConfigError(f"{field} {host!r} must not carry a '#fragment'")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SmscConfigError(f"{field} {host!r} is not a host name or http(s) URL")
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port == 0:
        raise SmscConfigError(f"{field} {host!r}: port must be a number from 1 to 65535")
    if any(ch.isspace() or not ch.isprintable() for ch in host):
        raise SmscConfigError(f"{field} {host!r} holds spaces or control characters")
    _check_hostname(parts.hostname, host, field)
    if parts.scheme == "http" and not (allow_http or _is_loopback(parts.hostname)):
        raise SmscConfigError(
            f"{field} {host!r} uses plain http, which would send the password in clear; "
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


def _positive_number(
    extra: Mapping[str, Any], name: str, default: float, *, limit: float = MAX_TIMEOUT
) -> float:
    value = extra.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SmscConfigError(
            f"extra {name!r} must be a number of seconds, got {value!r}"
        ) from None
    if isinstance(value, bool) or not 0 < number <= limit:
        raise SmscConfigError(f"extra {name!r} must be > 0 and <= {limit:g}, got {value!r}")
    return number


def _byte_count(extra: Mapping[str, Any], name: str, default: int) -> int:
    value = extra.get(name, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise SmscConfigError(f"extra {name!r} must be a whole number of bytes, got {value!r}")
    if not _MIN_REPLY_BYTES <= value <= _MAX_REPLY_BYTES:
        raise SmscConfigError(
            f"extra {name!r} must be between {_MIN_REPLY_BYTES} and {_MAX_REPLY_BYTES} bytes, "
            f"got {value!r}"
        )
    return value


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
    # The UI's connection form stores a field left empty as null or "": that means "default",
    # as if the extra were not set (an empty reserve_hosts must not drop the reserves).
    extra = {
        key: value
        for key, value in (extra or {}).items()
        if value is not None and not (isinstance(value, str) and not value.strip())
    }

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
    reserves = (
        base_url(h, allow_http=allow_http, field="extra 'reserve_hosts' entry")
        for h in _reserve_hosts(extra, primary)
    )
    read_timeout = _positive_number(extra, "timeout", 60.0)
    deadline_default = max(DEFAULT_DEADLINE, 2 * read_timeout)
    return SmscSettings(
        base_urls=(primary, *reserves),
        login=login or None,
        password=password or None,
        apikey=apikey,
        fmt=fmt,
        mycur=_flag(extra, "mycur", True),
        balance2=_flag(extra, "balance2", False),
        connect_timeout=_positive_number(extra, "connect_timeout", 10.0),
        read_timeout=read_timeout,
        ca_bundle=str(ca_bundle) if ca_bundle else None,
        account_name=str(account_name) if account_name else None,
        deadline=_positive_number(extra, "deadline", deadline_default, limit=2 * MAX_TIMEOUT),
        max_reply_bytes=_byte_count(extra, "max_reply_bytes", DEFAULT_MAX_REPLY_BYTES),
        password_md5=_flag(extra, "password_md5", False),
    )
