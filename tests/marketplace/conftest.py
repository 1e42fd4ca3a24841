"""Fixtures for the marketplace tests: migrated databases on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from marketplace.migrate import apply_migrations


@pytest.fixture(scope="session")
def migrated_database_factory(database_factory: Callable[[str], str]) -> Callable[[str], str]:
    """Creates a fresh database with every migration applied; returns its URL."""

    def create(label: str) -> str:
        url = database_factory(label)
        apply_migrations(url)
        return url

    return create


@pytest.fixture
def migrated_database(migrated_database_factory: Callable[[str], str]) -> str:
    return migrated_database_factory("mkt")
