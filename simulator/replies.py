"""Reply bodies in the four SMSC formats, encoded in the requested charset."""

from __future__ import annotations

import json
from collections.abc import Sequence
from xml.sax.saxutils import escape

from simulator.truth import Row

CHARSETS = ("utf-8", "koi8-r", "windows-1251")
DEFAULT_CHARSET = "windows-1251"
FORMATS = (0, 1, 2, 3)

ERRORS: dict[int, str] = {
    1: "parameters error",
    2: "authorise error",
    3: "not enough money",
    4: "IP is blocked",
    9: "too many requests",
}

_CONTENT_TYPES = {0: "text/plain", 1: "text/plain", 2: "text/xml", 3: "application/json"}


def content_type(fmt: int, charset: str) -> str:
    """Content-Type header value for a reply in ``fmt``."""
    return f"{_CONTENT_TYPES.get(fmt, 'text/plain')}; charset={charset}"


def success_text(rows: Sequence[Row], fmt: int, charset: str) -> str:
    """A statistics reply as text, before encoding."""
    if fmt == 3:
        items = [
            {
                "login": r["login"],
                "cnt": r["cnt"],
                "credit": str(r["credit"]),
                "debit": str(r["debit"]),
                "currency": r["currency"],
            }
            for r in rows
        ]
        return json.dumps(items, ensure_ascii=False, indent=2)
    if fmt == 1:
        return "".join(
            f"{r['login']},{r['cnt']},{r['credit']},{r['debit']},{r['currency']}\n" for r in rows
        )
    if fmt == 2:
        stats = "".join(
            "<stat>"
            f"<login>{escape(r['login'])}</login><cnt>{r['cnt']}</cnt>"
            f"<credit>{r['credit']}</credit><debit>{r['debit']}</debit>"
            f"<currency>{escape(r['currency'])}</currency>"
            "</stat>\n"
            for r in rows
        )
        return f'<?xml version="1.0" encoding="{charset}"?>\n<result>\n{stats}</result>'
    return "".join(
        f"login = {r['login']}, cnt = {r['cnt']}, credit = {r['credit']}, "
        f"debit = {r['debit']}, currency = {r['currency']}\n"
        for r in rows
    )


def error_text(code: int, fmt: int) -> str:
    """An API error reply as text; the HTTP status stays 200 like the real server's."""
    description = ERRORS.get(code, "unknown error")
    if fmt == 3:
        return json.dumps({"error": description, "error_code": code})
    if fmt == 2:
        error = f"<error>{escape(description)}</error><error_code>{code}</error_code>"
        return f"<result>{error}</result>"
    if fmt == 1:
        return f"0,-{code}"
    return f"ERROR = {code} ({description})"


def encode(text: str, fmt: int, charset: str) -> bytes:
    """Encode in the reply charset; XML keeps unencodable characters as references."""
    return text.encode(charset, errors="xmlcharrefreplace" if fmt == 2 else "replace")
