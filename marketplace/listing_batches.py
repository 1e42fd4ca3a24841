"""Concurrent single-car creates coalesced into multi-row INSERTs (group commit at the application level).

Under load many dealers post cars at once; one statement per car costs a pool checkout, a round trip and a commit
each, and on this hardware that was most of `POST /cars`. `CarBatcher.insert` queues a car; up to
`max_in_flight` background drains each take every queued car (up to `max_rows`) and insert them with one
statement in autocommit, so a batch is one transaction. Nothing waits on a timer: when a drain is free, a lone
car goes at once, in a batch of one.

The batch is an optimization, never the judge: a car it did not insert (no dealership, a suspended one, a VIN the
dealer lists already, two of the same in one batch, or any error of the statement) is answered `None`, and the
caller inserts it alone, which gives that car its own answer (403, 409, 503...).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool

from hub.errors import ServiceUnavailable
from marketplace import listing_store
from marketplace.db import Connection, single_statement

MAX_IN_FLIGHT: Final = 4
MAX_ROWS: Final = 100

log = logging.getLogger(__name__)

_Queued = tuple[int, dict[str, Any], "asyncio.Future[dict[str, Any] | None]"]


class CarBatcher:
    def __init__(
        self, pool: AsyncConnectionPool[Connection], *, max_in_flight: int = MAX_IN_FLIGHT, max_rows: int = MAX_ROWS
    ) -> None:
        self.pool = pool
        self.max_in_flight = max_in_flight
        self.max_rows = max_rows
        self._queue: list[_Queued] = []
        self._drains: set[asyncio.Task[None]] = set()

    async def insert(self, owner_id: int, values: dict[str, Any]) -> dict[str, Any] | None:
        """The new car, for the dealership `owner_id` runs; None if this batch did not insert it (ask alone)."""
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._queue.append((owner_id, values, future))
        if len(self._drains) < self.max_in_flight:
            task = asyncio.create_task(self._drain())
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_rows], self._queue[self.max_rows :]
            try:
                await self._write(batch)
            except BaseException as exc:  # the callers get it (cancelled if the drain was), and it goes on up
                for _, _, future in batch:
                    if future.done():
                        continue
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
                raise

    async def _write(self, batch: list[_Queued]) -> None:
        cars: list[tuple[int, dict[str, Any]]] = []
        seen: set[tuple[int, str]] = set()
        for owner_id, values, _ in batch:
            key = (owner_id, values["vin"])
            if key not in seen:  # a repeat waits for its own insert, which then says 409
                seen.add(key)
                cars.append((owner_id, values))
        try:
            async with single_statement(self.pool) as conn:
                created = await listing_store.insert_cars_for_owners(conn, cars)
        except (psycopg.Error, ServiceUnavailable) as exc:
            log.info("a batch of %d cars failed (%s); each is inserted alone", len(cars), exc)
            created = {}
        taken: set[tuple[int, str]] = set()
        for owner_id, values, future in batch:
            key = (owner_id, values["vin"])
            car = created.get(key) if key not in taken else None
            taken.add(key)
            if not future.done():  # a caller that went away (cancelled) needs no answer
                future.set_result(car)
