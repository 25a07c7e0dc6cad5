"""Registers the SMSC timetable, the "SMSC" operations page and the scheduler's preload of
our task processes' modules (:mod:`smsc_hook.airflow.warmup`) with Airflow.

Installed, the package's ``airflow.plugins`` entry point names :class:`SmscPlugin`. A
deployment that only puts ``plugins/`` on its path gets it through ``plugins/smsc_plugin.py``.

Every Airflow process loads plugins (the scheduler, each task's process), but only the
api-server serves the page: the FastAPI app is built on its first request, so importing
this module costs no FastAPI, Jinja2 or SQL.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin

from smsc_hook import timetable as timetable_0_1
from smsc_hook.airflow.timetable import SmscDailyTimetable
from smsc_hook.airflow.warmup import WARMUP

#: The entry point that registers this plugin when the package is installed.
ENTRY_POINT = "smsc_hook.airflow.plugin:SmscPlugin"
#: Where the api-server mounts the page (relative to ``[api] base_url``).
PAGE_PREFIX = "/smsc"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyPageApp:
    """An ASGI app that builds :func:`smsc_hook.ui.app.create_app` on its first request."""

    def __init__(self) -> None:
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from smsc_hook.ui.app import create_app

                    self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "smsc_hook.ui.app:create_app (built on first request)"


def _page_path(path: str) -> str:
    """``path`` of the page's app under the api-server's ``[api] base_url``."""
    from urllib.parse import urlsplit

    root = urlsplit(conf.get("api", "base_url", fallback="") or "/").path.rstrip("/")
    return f"{root}{PAGE_PREFIX}/{path}"


class SmscPlugin(AirflowPlugin):
    name = "smsc"
    # The 0.1 path too: DAG versions serialized by 0.1 name it.
    timetables = [SmscDailyTimetable, timetable_0_1.SmscDailyTimetable]
    fastapi_apps = [{"app": LazyPageApp(), "url_prefix": PAGE_PREFIX, "name": "SMSC operations"}]
    # url_route: shown inside Airflow's UI (an iframe at /plugin/smsc), from a button of
    # its own in the navigation bar.
    external_views = [
        {
            "name": "SMSC",
            "href": _page_path(""),
            "icon": _page_path("icon.svg"),
            "destination": "nav",
            "url_route": "smsc",
            "nav_top_level": True,
        }
    ]
    # The scheduler imports our task processes' modules before it forks its workers.
    listeners = [WARMUP]


#: The distribution whose ``airflow.plugins`` entry point is :data:`ENTRY_POINT`.
DISTRIBUTION = "smsc-airflow-provider"


def installed() -> bool:
    """Whether the installed distribution registers :class:`SmscPlugin` (entry point).

    Reads that one distribution's metadata: every Airflow process imports ``plugins/``
    (each task's too), and scanning every installed distribution's entry points there
    cost about 20 ms of CPU each time (0.5 ms for one distribution).
    """
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        points = distribution(DISTRIBUTION).entry_points
    except PackageNotFoundError:
        return False
    return any(ep.group == "airflow.plugins" and ep.value == ENTRY_POINT for ep in points)
