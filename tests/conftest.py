"""Shared fixtures: a real PostgreSQL database per test and a real SMSC simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import Engine, create_engine

from devtools import postgres
from devtools.simulator_process import RunningSimulator, running_simulator
from smsc_hook.warehouse.migrations import apply_migrations

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
def engine(warehouse_url: str) -> Iterator[Engine]:
    """An engine on a fresh warehouse database with every migration applied."""
    apply_migrations(warehouse_url)
    eng = create_engine(warehouse_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def fast_simulator() -> Iterator[RunningSimulator]:
    """One simulator per module with a high limit (a month of days loads at once)."""
    args = ("--quiet", "--rate-limit", "1000", "--today", SIM_TODAY.isoformat())
    with running_simulator(*args) as sim:
        yield sim


@pytest.fixture
def simulator() -> Iterator[RunningSimulator]:
    """A fresh SMSC simulator on a free port: real limits (3 per 60 s), fixed today."""
    with running_simulator("--quiet", "--today", SIM_TODAY.isoformat()) as sim:
        yield sim
