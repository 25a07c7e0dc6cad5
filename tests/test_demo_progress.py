"""``make demo``'s progress: one line updated in place on a terminal, a line per change
elsewhere (CI logs, pipes), the countdowns not counting as a change."""

from __future__ import annotations

import io

from devtools.demo import ProgressLine, account_key


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_one_line_is_rewritten_in_place():
    out = Terminal()
    line = ProgressLine(out)
    line.update((0, 0, 1), "0/7 days loaded, 1 API calls, next slot in 20 s")
    line.update((0, 0, 1), "0/7 days loaded, 1 API calls, next slot in 18 s")
    line.update((1, 0, 2), "1/7 days loaded, 2 API calls, next slot now")
    line.close()
    text = out.getvalue()
    assert text.count("\n") == 1
    assert text.endswith("\r\x1b[Kdemo: 1/7 days loaded, 2 API calls, next slot now\n")
    assert text.count("\r\x1b[K") == 3


def test_elsewhere_a_line_per_change_of_days_or_calls():
    out = io.StringIO()
    line = ProgressLine(out)
    for key, text in [
        ((0, 0, 1), "0/7, 1 call, next slot in 20 s"),
        ((0, 0, 1), "0/7, 1 call, next slot in 18 s"),  # only the countdown moved
        ((1, 0, 2), "1/7, 2 calls"),
    ]:
        line.update(key, text)
    line.close()
    assert out.getvalue().splitlines() == [
        "demo: 0/7, 1 call, next slot in 20 s",
        "demo: 1/7, 2 calls",
    ]


def test_the_ledger_key_is_the_connections_account_or_login():
    assert account_key({"login": "demo"}) == "demo"
    assert account_key({"login": "demo", "extra": '{"account": "shop"}'}) == "shop"
    assert account_key({"login": "demo", "extra": {"account": "news"}}) == "news"
