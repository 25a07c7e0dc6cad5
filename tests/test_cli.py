"""``airflow smsc …``: the provider's CLI commands hand their options to the modules' main()."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

import pytest

from smsc_hook.airflow.cli import COMMANDS, Command

BY_NAME = {command.name: command for command in COMMANDS}


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def module_options(name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """The options ``smsc_hook.NAME.main()`` declares, read from its own parser."""

    def capture(parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise _Captured(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Captured) as captured:
        importlib.import_module(f"smsc_hook.{name}").main([])
    return {
        action.option_strings[-1]: {
            "takes_value": action.nargs != 0,
            "choices": tuple(action.choices) if action.choices else None,
            "required": action.required,
        }
        for action in captured.value.parser._actions
        if action.option_strings and "--help" not in action.option_strings
    }


def declared_options(command: Command) -> dict[str, dict[str, Any]]:
    return {
        option.flag: {
            "takes_value": option.takes_value,
            "choices": option.choices,
            "required": option.required,
        }
        for option in command.options
    }


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_cli_options_are_the_modules_own(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``airflow smsc NAME`` accepts exactly what ``python -m smsc_hook.NAME`` accepts."""
    assert declared_options(BY_NAME[name]) == module_options(name, monkeypatch)


def test_the_provider_info_names_the_cli() -> None:
    from smsc_hook.airflow.provider_info import get_provider_info

    (path,) = get_provider_info()["cli"]
    module, _, function = path.rpartition(".")
    (group,) = getattr(importlib.import_module(module), function)()
    assert group.name == "smsc"
    assert sorted(sub.name for sub in group.subcommands) == ["bootstrap", "gaps", "probe"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["bootstrap"], [], id="bootstrap-defaults"),
        pytest.param(["bootstrap", "--no-api-call"], ["--no-api-call"], id="bootstrap-flag"),
        pytest.param(["gaps"], [], id="gaps-defaults-left-to-main"),
        pytest.param(
            ["gaps", "--dry-run", "--account", "shop", "--wait-timeout", "60"],
            ["--account", "shop", "--dry-run", "--wait-timeout", "60"],
            id="gaps-options",
        ),
        pytest.param(
            ["probe", "--out", "/tmp/replies", "--day", "2026-11-05"],
            ["--day", "2026-11-05", "--out", "/tmp/replies"],
            id="probe-options",
        ),
    ],
)
def test_airflow_parses_and_hands_on_the_options(
    argv: list[str], expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Airflow's own parser: the module's main() gets the options as written."""
    from airflow.cli.cli_config import ActionCommand, GroupCommand
    from airflow.cli.cli_parser import _add_command

    from smsc_hook.airflow.cli import get_cli_commands

    parser = argparse.ArgumentParser(prog="airflow")
    subparsers = parser.add_subparsers(dest="subcommand")
    (group,) = get_cli_commands()
    assert isinstance(group, GroupCommand)
    _add_command(subparsers, group)
    args = parser.parse_args(["smsc", *argv])
    command = BY_NAME[argv[0]]
    assert isinstance(next(s for s in group.subcommands if s.name == argv[0]), ActionCommand)
    assert command.argv(args) == expected

    received: list[list[str]] = []
    module = importlib.import_module(f"smsc_hook.{argv[0]}")
    monkeypatch.setattr(module, "main", lambda given: received.append(given) or 3)
    with pytest.raises(SystemExit) as exited:
        args.func(args)
    assert (received, exited.value.code) == ([expected], 3)
