"""Shared fixtures: a real PostgreSQL database per test and a real SMSC simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from devtools import postgres
from devtools.simulator_process import RunningSimulator, running_simulator

#: The simulator's "today" in tests, so ground truth never depends on the wall clock.
SIM_TODAY = date(2026, 11, 10)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of a PostgreSQL server where tests may create and drop databases."""
    return postgres.server_url()


@pytest.fixture
def warehouse_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty database (SQLAlchemy URL), dropped after the test."""
    with postgres.throwaway_database(pg_server_url) as url:
        yield url


@pytest.fixture
def simulator() -> Iterator[RunningSimulator]:
    """A fresh SMSC simulator on a free port: real limits (3 per 60 s), fixed today."""
    with running_simulator("--quiet", "--today", SIM_TODAY.isoformat()) as sim:
        yield sim
