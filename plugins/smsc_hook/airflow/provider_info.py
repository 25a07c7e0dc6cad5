"""Provider metadata: the ``smsc`` connection form (its one source) and the ``airflow smsc`` CLI."""

from __future__ import annotations

from typing import Any

from smsc_hook import __version__

PACKAGE_NAME = "smsc-airflow-provider"


def get_provider_info() -> dict[str, Any]:
    """Read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "SMSC",
        "description": "SMSC (smsc.ru / smscentre.com) sending statistics into PostgreSQL.",
        "versions": [__version__],
        # Airflow 3.2+: `airflow smsc bootstrap|gaps|probe`.
        "cli": ["smsc_hook.airflow.cli.get_cli_commands"],
        "connection-types": [
            {
                "connection-type": "smsc",
                "hook-class-name": "smsc_hook.client.hook.SmscHook",
                "hook-name": "SMSC",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Host or base URL",
                        "login": "Login",
                        "password": "Password",
                    },
                    "placeholders": {
                        "host": "smsc.ru (or http://127.0.0.1:8765 for the local simulator)",
                        "login": "SMSC account login",
                        "password": "SMSC account password",
                    },
                },
                "conn-fields": {
                    "fmt": {
                        "label": "Reply format",
                        "description": "0 text, 1 CSV, 2 XML, 3 JSON (default: 3)",
                        "schema": {"type": "integer", "enum": [0, 1, 2, 3], "default": 3},
                    },
                    "mycur": {
                        "label": "Amounts in account currency",
                        "description": "Send mycur=1 so amounts come in the account's currency",
                        "schema": {"type": "boolean", "default": True},
                    },
                    "balance2": {
                        "label": "Second balance (balance2)",
                        "description": "Fetch the statistics of the second balance",
                        "schema": {"type": "boolean", "default": False},
                    },
                    "apikey": {
                        "label": "API key",
                        "description": "Used instead of login + password when set",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "account": {
                        "label": "Account name",
                        "description": "Warehouse key for this account (default: the login)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "timeout": {
                        "label": "Read timeout, s",
                        "schema": {"type": "number", "default": 60},
                    },
                    "reserve_hosts": {
                        "label": "Reserve hosts",
                        "description": "Comma-separated hosts tried on transport faults only",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            }
        ],
    }
