"""The whole API on a real uvicorn server (in a thread, on a free port) over real PostgreSQL and its own Redis."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from bidding.api import BiddingHttpSettings
from hub.api import create_app
from hub.broker import free_port
from marketplace.migrate import apply_migrations
from search_api.settings import ApiSettings
from tests.bidding.conftest import RedisServer
from tests.marketplace.api_client import JWT_SECRET, Member
from tests.marketplace.test_auctions import Market

RATE_LIMIT = 20
RATE_WINDOW_S = 10


@dataclass
class LiveApi:
    base_url: str
    database_url: str
    redis: RedisServer
    app: FastAPI
    emails: itertools.count[int] = field(default_factory=itertools.count)  # one sequence: the database outlives a test

    @asynccontextmanager
    async def market(self) -> AsyncIterator[Market]:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as client:
            market = Market(client, self.database_url)
            market.emails = self.emails
            yield market


@contextmanager
def live_api(database_factory: Callable[[str], str], directory: Path, label: str, **bidding: Any) -> Iterator[LiveApi]:
    database_url = database_factory(label)
    apply_migrations(database_url)
    redis = RedisServer(directory).start()
    port = free_port()
    settings = ApiSettings(
        index_path=directory / "index", database_url=database_url, jwt_secret=JWT_SECRET, bcrypt_rounds=4
    )
    options: dict[str, Any] = {
        "redis_url": redis.url,
        "bid_rate_limit": RATE_LIMIT,
        "bid_rate_window_s": RATE_WINDOW_S,
        "sse_heartbeat_s": 0.5,
        **bidding,
    }
    app = create_app(settings, bidding=BiddingHttpSettings(**options))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{label}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield LiveApi(f"http://127.0.0.1:{port}", database_url, redis, app)
    finally:
        server.should_exit = True
        thread.join(15)
        redis.stop()


async def live_auction(market: Market, lots: int = 1, **overrides: Any) -> tuple[dict[str, Any], Member]:
    """A live auction (started a minute ago, ends in an hour) of `lots` cars, and its dealer's member."""
    dealer = await market.dealer()
    auction = await market.created(dealer, [market.car(dealer) for _ in range(lots)], **overrides)
    market.shift_schedule(auction["id"], timedelta(minutes=-1), timedelta(hours=1))
    return auction, dealer.member
