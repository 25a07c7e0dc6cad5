"""Shared fixtures: a real PostgreSQL database per test and a real SMSC simulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools import postgres


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of a PostgreSQL server where tests may create and drop databases."""
    return postgres.server_url()


@pytest.fixture
def warehouse_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty database (SQLAlchemy URL), dropped after the test."""
    with postgres.throwaway_database(pg_server_url) as url:
        yield url
