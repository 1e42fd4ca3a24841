"""Composition roots of the bidding lifecycle processes: the persister and the scheduler (`auction-hub bids ...`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from bidding.bid_events import KafkaBidSink
from bidding.engine import BidEngine
from bidding.persistence import BidPersister
from bidding.rate_limit import RateLimit
from bidding.scheduler import LotScheduler
from bidding.service import BiddingService
from bidding.settings import BidLifecycleSettings
from marketplace.db import Connection, create_pool

log = logging.getLogger(__name__)


@asynccontextmanager
async def clients(settings: BidLifecycleSettings) -> AsyncIterator[tuple[AsyncConnectionPool[Connection], Redis]]:
    pool = create_pool(settings.database_url, max_size=4)
    redis: Redis = settings.redis_client()
    await pool.open(wait=False)
    try:
        yield pool, redis
    finally:
        await redis.aclose()
        await pool.close()


def kafka_sink(settings: BidLifecycleSettings) -> KafkaBidSink:
    return KafkaBidSink(
        settings.require_bootstrap(),
        settings.auction_bids_topic,
        settings.topic_partitions,
        key_schema_topic=settings.vehicle_change_topic() if settings.key_schemas_enable else None,
    )


async def run_persister(settings: BidLifecycleSettings, stop: asyncio.Event) -> None:
    sink = kafka_sink(settings)
    async with clients(settings) as (pool, redis):
        await sink.start()
        try:
            persister = BidPersister(
                redis,
                pool,
                sink,
                consumer=settings.persister_consumer,
                batch_size=settings.persister_batch,
                block_ms=settings.stream_block_ms(settings.persister_block_ms),
                claim_idle_ms=settings.persister_claim_idle_ms,
            )
            log.info("bid persister %s: Redis bids streams -> PostgreSQL + %s", persister.consumer, sink.topic)
            await persister.run(stop)
        finally:
            await sink.close()


async def run_scheduler(settings: BidLifecycleSettings, stop: asyncio.Event) -> None:
    async with clients(settings) as (pool, redis):
        service = BiddingService(pool, redis, BidEngine(redis), RateLimit())
        scheduler = LotScheduler(
            pool,
            service,
            arm_ahead_s=settings.scheduler_arm_ahead_s,
            announce_ahead_s=settings.scheduler_announce_ahead_s,
            announce_every_s=settings.scheduler_announce_every_s,
        )
        log.info("lot scheduler: every %.1fs, arming %.0fs ahead", settings.scheduler_interval_s, scheduler.arm_ahead_s)
        await scheduler.run(stop, settings.scheduler_interval_s)


async def run_lifecycle(settings: BidLifecycleSettings, stop: asyncio.Event) -> None:
    """Both in one process (what `auction-hub up` runs)."""
    await asyncio.gather(run_persister(settings, stop), run_scheduler(settings, stop))
