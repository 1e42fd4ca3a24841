"""The lot scheduler: arms lots shortly before they start, opens them at the start, closes them at the end.

It also tells search about lots no bid has spoken for yet: every lot it arms or opens, and every `announce_every_s`
each lot of an auction starting within `announce_ahead_s`, gets a state record in its bids stream (armed lots stay
in Redis from then on), which the persister publishes to `auction.bids` like a bid; the indexer then shows the car
as in an upcoming or live auction, with its end. A record repeated (another scheduler, a restart) changes nothing.

Any number of schedulers (one per API host, say) may run at once: opening and closing are single Lua scripts that
change a lot only if it is due, so exactly one caller gets each close (`BidEngine.close_if_due`); the others get
None. A lot extended by soft close is simply not due yet. The close's record in the lot's bids stream is what the
persister turns into the result in PostgreSQL and on Kafka, whoever closed it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from bidding import bid_store
from bidding.engine import BidEngine, lot_key
from bidding.lots import LotResult
from bidding.service import BiddingService
from hub.errors import AppError
from marketplace.db import Connection

log = logging.getLogger(__name__)


@dataclass
class Tick:
    armed: list[int] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    closed: list[LotResult] = field(default_factory=list)
    announced: list[int] = field(default_factory=list)


class LotScheduler:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        service: BiddingService,
        *,
        arm_ahead_s: float = 300.0,
        announce_ahead_s: float = 30 * 86_400.0,
        announce_every_s: float = 30.0,
        batch: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.service = service
        self.engine: BidEngine = service.engine
        self.arm_ahead_s = arm_ahead_s
        self.batch = batch
        self.clock = clock
        self.announce_ahead_s = max(announce_ahead_s, arm_ahead_s)
        self.announce_every_s = announce_every_s
        self._refused: set[int] = set()
        self._announced: set[int] = set()  # by this process since it started
        self._next_sweep = 0.0

    async def tick(self) -> Tick:
        """One pass over the lots that start before now + `arm_ahead_s` (`announce_ahead_s` on a sweep) and are not
        closed in PostgreSQL."""
        tick = Tick()
        now = self.clock()
        now_ms = int(now * 1000)
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + self.announce_every_s
        horizon = datetime.fromtimestamp(now, UTC) + timedelta(
            seconds=self.announce_ahead_s if sweep else self.arm_ahead_s
        )
        async with self.pool.connection() as conn:
            rows = await bid_store.lots_to_schedule(conn, horizon, self.batch)
        if sweep:  # forget lots closed since (by another scheduler too): at worst one is announced again
            still_open = {int(row["id"]) for row in rows}
            self._announced &= still_open
            self._refused &= still_open
        if not rows:
            return tick
        redis = self.engine.redis
        async with redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.exists(lot_key(int(row["id"]), "state"))
            armed = await pipe.execute()
        live_auctions: set[int] = set()
        for row, exists in zip(rows, armed, strict=True):
            lot_id = int(row["id"])
            if not exists:
                if not await self._arm(lot_id):
                    continue
                tick.armed.append(lot_id)
            started = row["starts_at"].timestamp() * 1000 <= now_ms
            if started and row["auction_status"] == "upcoming":
                live_auctions.add(int(row["auction_id"]))
            await self._open_and_announce(lot_id, started, now_ms, tick)
            if row["ends_at"].timestamp() * 1000 <= now_ms:
                result = await self.engine.close_if_due(lot_id, now_ms)
                if result is not None:
                    self._announced.discard(lot_id)
                    tick.closed.append(result)
                    log.info("lot %d closed: %s at %d cents", lot_id, result.outcome, result.price)
        if live_auctions:
            async with self.pool.connection() as conn:
                await bid_store.mark_auctions_live(conn, sorted(live_auctions))
        return tick

    async def _open_and_announce(self, lot_id: int, started: bool, now_ms: int, tick: Tick) -> None:
        opened = started and await self.engine.open_due(lot_id, now_ms)
        if opened:
            tick.opened.append(lot_id)
        if (opened or lot_id not in self._announced) and await self.engine.announce(lot_id, now_ms):
            self._announced.add(lot_id)
            tick.announced.append(lot_id)

    async def _arm(self, lot_id: int) -> bool:
        """Arm a lot from PostgreSQL (rebuilt if it had bids); False, logged once per lot, when it cannot be."""
        try:
            await self.service.arm(lot_id)
        except AppError as exc:
            if lot_id not in self._refused:
                self._refused.add(lot_id)
                log.warning("lot %d cannot be armed: %s", lot_id, exc)
            return False
        return True

    async def run(self, stop: asyncio.Event, interval_s: float = 0.5) -> None:
        """Tick every `interval_s` until `stop`; a failing tick (Redis or PostgreSQL down) is retried."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler tick failed")
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                pass
