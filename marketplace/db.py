"""The marketplace's PostgreSQL connection pool (parameterized SQL only, via psycopg)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hub.errors import ServiceUnavailable

Connection = psycopg.AsyncConnection[dict[str, Any]]


def create_pool(database_url: str, *, max_size: int) -> AsyncConnectionPool[Connection]:
    """Not opened yet: `await pool.open(wait=False)` in the app's lifespan, so the API starts without the DB."""
    return AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=max_size,
        open=False,
        timeout=5.0,
        kwargs={"row_factory": dict_row, "autocommit": False},
        connection_class=psycopg.AsyncConnection[dict[str, Any]],
    )


@asynccontextmanager
async def transaction(pool: AsyncConnectionPool[Connection]) -> AsyncIterator[Connection]:
    """One connection in one transaction (committed on success, rolled back on error)."""
    try:
        async with pool.connection() as connection:
            yield connection
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise ServiceUnavailable(
            "the marketplace database is unreachable; retry shortly", headers={"Retry-After": "5"}
        ) from exc


@asynccontextmanager
async def single_statement(pool: AsyncConnectionPool[Connection]) -> AsyncIterator[Connection]:
    """One connection in autocommit mode, for a write that is one SQL statement (its own transaction).

    Saves the two round trips of `transaction` (BEGIN before the statement, COMMIT after it); the connection goes
    back to the pool in its usual mode. Never run more than one statement that must commit together in it.
    """
    try:
        async with pool.connection() as connection:
            await connection.set_autocommit(True)
            try:
                yield connection
            finally:
                await connection.set_autocommit(False)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise ServiceUnavailable(
            "the marketplace database is unreachable; retry shortly", headers={"Retry-After": "5"}
        ) from exc
