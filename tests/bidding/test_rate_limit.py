"""The per-user bid rate limit on a real Redis: a sliding window, exact waits, users and processes apart."""

from __future__ import annotations

import asyncio
import itertools

import redis.asyncio as aioredis
from redis.crc import key_slot

from bidding.rate_limit import BidRateLimiter, RateLimit, rate_key

_users = itertools.count(700_000)
T0 = 1_800_000_000_000


async def test_counts_at_most_the_limit_in_any_window(redis_client: aioredis.Redis) -> None:
    limiter = BidRateLimiter(redis_client, RateLimit(bids=3, window_s=10))
    user = next(_users)
    assert [await limiter.admit(user, T0 + ms) for ms in (0, 4_000, 9_000)] == [0, 0, 0]
    assert await limiter.admit(user, T0 + 9_500) == 500  # the bid at T0 leaves the window at T0 + 10 s
    assert await limiter.admit(user, T0 + 9_999) == 1
    assert await limiter.admit(user, T0 + 10_000) == 0
    # a burst across what a fixed window would call a boundary still counts as one window
    assert await limiter.admit(user, T0 + 10_001) == 4_000 - 1


async def test_refused_bids_are_not_counted_and_users_are_apart(redis_client: aioredis.Redis) -> None:
    limiter = BidRateLimiter(redis_client, RateLimit(bids=2, window_s=1))
    alice, bob = next(_users), next(_users)
    assert [await limiter.admit(alice, T0) for _ in range(5)] == [0, 0, 1_000, 1_000, 1_000]
    assert await limiter.admit(bob, T0) == 0
    assert await limiter.admit(alice, T0 + 1_000) == 0  # the refusals held nothing back


async def test_concurrent_processes_share_one_limit(redis_client: aioredis.Redis) -> None:
    limit = RateLimit(bids=10, window_s=60)
    limiters = [BidRateLimiter(redis_client, limit) for _ in range(4)]  # four API processes, same clock
    user = next(_users)
    waits = await asyncio.gather(*(limiters[n % 4].admit(user, T0) for n in range(40)))
    assert waits.count(0) == 10
    assert await redis_client.zcard(rate_key(user)) == 10


async def test_the_log_expires_and_lives_on_the_users_slot(redis_client: aioredis.Redis) -> None:
    limiter = BidRateLimiter(redis_client, RateLimit(bids=1, window_s=5))
    user = next(_users)
    await limiter.admit(user, T0)
    assert 0 < await redis_client.pttl(rate_key(user)) <= 5_000
    assert key_slot(rate_key(user).encode()) == key_slot(f"{{user:{user}}}".encode())
