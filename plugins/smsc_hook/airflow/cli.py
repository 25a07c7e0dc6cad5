"""``airflow smsc bootstrap|gaps|probe``: the package's commands in the Airflow CLI.

Airflow 3.2+ reads the ``cli`` section of the provider info and calls
:func:`get_cli_commands`. Each command hands the options it was given, as they were
written, to the module's own ``main()``, which stays the one place that parses, checks and
defaults them; ``python -m smsc_hook.<command>`` keeps working the same way. The options
are declared here too because Airflow parses the whole command line itself; a test keeps
them equal to the modules' own.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One option of a command, as ``main()`` of its module declares it."""

    flag: str
    help: str
    takes_value: bool = True
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    required: bool = False

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Command:
    """``airflow smsc NAME``: runs ``smsc_hook.NAME.main(argv)``."""

    name: str
    help: str
    options: tuple[Option, ...]

    def argv(self, args: argparse.Namespace) -> list[str]:
        """The options given on Airflow's command line, back as ``main()`` takes them."""
        argv: list[str] = []
        for option in self.options:
            value = getattr(args, option.dest, None)
            if not option.takes_value:
                if value:
                    argv.append(option.flag)
            elif value is not None:
                argv += [option.flag, str(value)]
        return argv

    def run(self, args: argparse.Namespace) -> None:
        main: Callable[[list[str]], int] = importlib.import_module(f"smsc_hook.{self.name}").main
        code = main(self.argv(args))
        if code:
            raise SystemExit(code)


_ACCOUNT = Option("--account", "name from SMSC_ACCOUNTS (default: the only one)")

COMMANDS: tuple[Command, ...] = (
    Command(
        "bootstrap",
        "Make the deployment ready: pools, warehouse migrations, connection check (idempotent)",
        (Option("--no-api-call", "check the SMSC connection offline only", takes_value=False),),
    ),
    Command(
        "gaps",
        "Backfill exactly the days never loaded (smsc.load_gaps), one range at a time",
        (
            _ACCOUNT,
            Option(
                "--series",
                "main (default), balance2, or subclients (users.php, for resellers)",
                choices=("main", "balance2", "subclients"),
            ),
            Option(
                "--dry-run",
                "print the ranges and commands only (reads no Airflow metadata)",
                takes_value=False,
            ),
            Option(
                "--wait-timeout",
                "how long to wait for the previous backfill of the DAG (default 14400 = 4 h)",
                metavar="SECONDS",
            ),
            Option(
                "--poll",
                "how often to look at the metadata database while waiting (default 5)",
                metavar="SECONDS",
            ),
        ),
    ),
    Command(
        "probe",
        "What SMSC really answers: one call per fmt 0-3, written as masked fixtures",
        (
            _ACCOUNT,
            Option("--day", "YYYY-MM-DD, a closed day (default: yesterday)"),
            Option("--out", "directory for the fixtures", required=True),
            Option("--name", "fixture name prefix (default smsc, or smsc-users with --subclients)"),
            Option(
                "--subclients",
                "ask users.php?get_stat (a reseller's subclients) instead of get.php",
                takes_value=False,
            ),
        ),
    ),
)


def _arg(option: Option) -> Any:
    from airflow.cli.cli_config import Arg

    if not option.takes_value:
        return Arg((option.flag,), help=option.help, action="store_true", default=False)
    extra: dict[str, Any] = {}
    if option.choices:
        extra["choices"] = option.choices
    if option.metavar:
        extra["metavar"] = option.metavar
    if option.required:
        extra["required"] = True
    # No default: an option left out is left out for main(), whose default then applies.
    return Arg((option.flag,), help=option.help, default=None, **extra)


def get_cli_commands() -> Sequence[Any]:
    """The ``smsc`` command group, for Airflow's CLI (the provider info's ``cli`` entry)."""
    from airflow.cli.cli_config import ActionCommand, GroupCommand

    return [
        GroupCommand(
            name="smsc",
            help="SMSC statistics provider: bootstrap, gaps, probe",
            subcommands=[
                ActionCommand(
                    name=command.name,
                    help=command.help,
                    func=command.run,
                    args=tuple(_arg(option) for option in command.options),
                )
                for command in COMMANDS
            ],
        )
    ]
