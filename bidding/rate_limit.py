"""The per-user bid rate limit: at most `bids` bids in any `window_s` seconds, decided in Redis.

A sliding log (one sorted set of bid times per user, hash-tagged `{user:ID}` for Redis Cluster) rather than fixed
windows: a fixed window lets a burst straddle its boundary and pass twice the limit, and its Retry-After is only a
guess. The log says exactly when the oldest counted bid leaves the window.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from bidding.redis_mux import MuxScript, RedisMux

# KEYS[1] the user's log; ARGV now_ms, window_ms, limit, member. Returns 0 (counted) or the ms until a bid may pass.
SLIDING_LOG = r"""
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


@dataclass(frozen=True)
class RateLimit:
    bids: int = 10
    window_s: int = 1


def rate_key(user_id: int) -> str:
    return f"bid_rate:{{user:{user_id}}}"


class BidRateLimiter:
    """Counts a user's bid if the limit allows it; shared by every API process through Redis."""

    def __init__(self, redis: aioredis.Redis | RedisMux, limit: RateLimit) -> None:
        self.limit = limit
        self._script: AsyncScript | MuxScript = redis.register_script(SLIDING_LOG)
        self._members = itertools.count()
        self._process = f"{os.getpid()}-{os.urandom(3).hex()}"  # members must be unique across processes

    async def admit(self, user_id: int, now_ms: int) -> int:
        """0 when the bid is counted; otherwise the milliseconds until the user may bid again."""
        member = f"{now_ms}:{self._process}:{next(self._members)}"
        window_ms = self.limit.window_s * 1000
        wait_ms = await self._script(keys=[rate_key(user_id)], args=[now_ms, window_ms, self.limit.bids, member])
        return int(wait_ms)
