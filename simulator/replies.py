"""Reply bodies in the four SMSC formats, encoded in the requested charset."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from xml.sax.saxutils import escape

from simulator.config import DEFAULT_DIALECT
from simulator.truth import Row

CHARSETS = ("utf-8", "koi8-r", "windows-1251")
DEFAULT_CHARSET = "windows-1251"
FORMATS = (0, 1, 2, 3)

ERRORS: dict[int, str] = {
    1: "parameters error",
    2: "authorise error",
    3: "not enough money",
    4: "IP is blocked",
    #: What the simulator answers a non-reseller on users.php (the real code is unknown).
    6: "access denied",
    9: "too many requests",
}
#: The users.php?get_stat error for an account that is not a reseller (an assumption).
NOT_RESELLER = 6

#: Extra columns of a row by name, as text (users.php rows carry ``user_id``).
Extra = Callable[[Row], Mapping[str, str]]

_CONTENT_TYPES = {0: "text/plain", 1: "text/plain", 2: "text/xml", 3: "application/json"}


def content_type(fmt: int, charset: str) -> str:
    """Content-Type header value for a reply in ``fmt``."""
    return f"{_CONTENT_TYPES.get(fmt, 'text/plain')}; charset={charset}"


def dialect_rows(rows: Sequence[Row], dialect: str) -> list[Row]:
    """The rows a dialect answers: ``omit-zero`` leaves out logins without any traffic."""
    if dialect == "omit-zero":
        return [r for r in rows if r["cnt"] or r["credit"] or r["debit"]]
    return list(rows)


def _varying(amount: Decimal, position: int) -> Decimal:
    """The same amount spelled with 0-2 places, or 4 on every second row (like "3215.3097")."""
    short = amount.normalize()
    if short.as_tuple().exponent > 0:  # type: ignore[operator]  # finite: an int exponent
        short = short.quantize(Decimal(1))  # 1E+2 -> 100
    return short.quantize(Decimal("0.0001")) if position % 2 else short


def _no_extra(r: Row) -> Mapping[str, str]:
    return {}


def _json_item(r: Row, position: int, dialect: str, extra: Extra) -> dict[str, str]:
    """One row as JSON value texts, by key."""
    if dialect == "numbers":
        credit, debit = (str(_varying(r[k], position)) for k in ("credit", "debit"))
    else:
        credit, debit = json.dumps(str(r["credit"])), json.dumps(str(r["debit"]))
    cnt = json.dumps(str(r["cnt"])) if dialect == "strings" else str(r["cnt"])
    return {
        "login": json.dumps(r["login"], ensure_ascii=False),
        "cnt": cnt,
        "credit": credit,
        "debit": debit,
        "currency": json.dumps(r["currency"]),
        **{k: json.dumps(v) for k, v in extra(r).items()},
    }


def _json_text(rows: Sequence[Row], dialect: str, extra: Extra) -> str:
    objects = [
        "{\n"
        + ",\n".join(f'    "{k}": {v}' for k, v in _json_item(r, i, dialect, extra).items())
        + "\n  }"
        for i, r in enumerate(rows)
    ]
    if dialect == "single-object" and len(objects) == 1:
        return objects[0].replace("\n    ", "\n  ").replace("\n  }", "\n}")
    return "[\n  " + ",\n  ".join(objects) + "\n]" if objects else "[]"


def success_text(
    rows: Sequence[Row],
    fmt: int,
    charset: str,
    dialect: str = DEFAULT_DIALECT,
    extra: Extra = _no_extra,
) -> str:
    """A statistics reply as text, before encoding, in ``dialect``'s layout.

    ``extra`` adds named columns after the five fields (fmt 0, 2, 3); the comma format
    (fmt 1) has no names, so it stays at exactly the five.
    """
    if dialect == "numbers":
        rows = [
            {**r, "credit": _varying(r["credit"], i), "debit": _varying(r["debit"], i)}
            for i, r in enumerate(rows)
        ]
    if fmt == 3 and dialect != DEFAULT_DIALECT:
        return _json_text(rows, dialect, extra)
    if fmt == 3:
        items = [
            {
                "login": r["login"],
                "cnt": r["cnt"],
                "credit": str(r["credit"]),
                "debit": str(r["debit"]),
                "currency": r["currency"],
                **extra(r),
            }
            for r in rows
        ]
        return json.dumps(items, ensure_ascii=False, indent=2)
    if fmt == 1:
        return "".join(
            f"{r['login']},{r['cnt']},{r['credit']},{r['debit']},{r['currency']}\n" for r in rows
        )
    if fmt == 2:
        declaration = f'<?xml version="1.0" encoding="{charset}"?>\n'
        fields = [
            f"<login>{escape(r['login'])}</login><cnt>{r['cnt']}</cnt>"
            f"<credit>{r['credit']}</credit><debit>{r['debit']}</debit>"
            f"<currency>{escape(r['currency'])}</currency>"
            + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in extra(r).items())
            for r in rows
        ]
        if dialect == "flat-xml":
            flat = "".join(f.replace("><", ">\n<") + "\n" for f in fields)
            return f"{declaration}<result>\n{flat}</result>"
        if dialect == "single-object" and len(fields) == 1:
            lines = fields[0].replace("><", ">\n<")
            return f"{declaration}<stat>\n{lines}\n</stat>"
        stats = "".join(f"<stat>{f}</stat>\n" for f in fields)
        return f"{declaration}<result>\n{stats}</result>"
    return "".join(
        f"login = {r['login']}, cnt = {r['cnt']}, credit = {r['credit']}, "
        f"debit = {r['debit']}, currency = {r['currency']}"
        + "".join(f", {k} = {v}" for k, v in extra(r).items())
        + "\n"
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
